"""Conversation history: system prompt, recent turns within a size budget."""

from __future__ import annotations

from voice.conversation import INTERRUPTED_MARK, Conversation
from voice.prompting import SMALL_MODEL, copied_answer


def test_messages_start_with_the_system_prompt() -> None:
    conv = Conversation("Be brief.", max_chars=1000)
    conv.add_user("Hi")
    conv.add_assistant("Hello!")
    conv.add_user("How are you?")
    assert conv.messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]


def test_empty_system_prompt_is_left_out() -> None:
    conv = Conversation("  ")
    conv.add_user("Hi")
    assert conv.messages() == [{"role": "user", "content": "Hi"}]


def test_oldest_turns_are_dropped_first_and_history_starts_with_a_user() -> None:
    conv = Conversation("sys", max_chars=30)
    for i in range(10):
        conv.add_user(f"question {i}")
        conv.add_assistant(f"answer {i}")
    conv.add_user("last one")
    messages = conv.messages()
    assert messages[0]["role"] == "system"
    assert messages[1]["role"] == "user"
    assert messages[-1] == {"role": "user", "content": "last one"}
    assert sum(len(m["content"]) for m in messages[1:]) <= 30
    assert {"role": "user", "content": "question 0"} not in messages


def test_a_huge_message_is_kept_truncated() -> None:
    conv = Conversation("sys", max_chars=100)
    conv.add_user("x" * 100_000)
    messages = conv.messages()
    assert len(messages) == 2 and len(messages[1]["content"]) == 100


def test_blank_assistant_text_is_not_recorded() -> None:
    conv = Conversation("sys")
    conv.add_user("Hi")
    conv.add_assistant("   ")
    assert [m["role"] for m in conv.messages()] == ["system", "user"]


def test_small_model_examples_are_sent_but_never_stored() -> None:
    from voice.prompting import SMALL_MODEL

    conv = Conversation("Be brief.", style=SMALL_MODEL)
    conv.add_user("What is the capital of Peru?")
    messages = conv.messages()
    examples = [{"role": m.role, "content": m.content} for m in SMALL_MODEL.examples]
    assert messages == [{"role": "system", "content": "Be brief."}, *examples, conv.turns[-1]]
    assert conv.turns == [{"role": "user", "content": "What is the capital of Peru?"}]  # the visible history
    assert conv.prefix() == messages[:-1]


def test_small_model_sees_only_its_last_exchanges_dropped_in_blocks() -> None:
    from voice.prompting import SMALL_MODEL

    assert SMALL_MODEL.max_exchanges == 3
    conv = Conversation("", style=SMALL_MODEL)
    seen: list[list[str]] = []
    for i in range(7):
        conv.add_user(f"question {i}")
        seen.append([m["content"] for m in conv.messages()[len(SMALL_MODEL.examples) :]])
        conv.add_assistant(f"a bad answer {i}")
    counts = [(len(s) - 1) // 2 for s in seen]
    assert counts == [0, 1, 2, 3, 1, 2, 3]  # never more than 3 earlier exchanges, never 0 after the first
    assert seen[-1] == [f"{kind} {i}" for i in (3, 4, 5) for kind in ("question", "a bad answer")] + ["question 6"]
    assert seen[4] == ["question 3", "a bad answer 3", "question 4"]
    # Most turns only append to the turn before's prompt, which is what keeps the cache warm.
    appended = [seen[i][: len(seen[i - 1])] == seen[i - 1] for i in range(1, 7)]
    assert appended.count(True) >= 4
    assert len(conv.turns) == 14  # everything is still kept for the session itself


def test_plain_style_for_a_real_endpoint() -> None:
    from voice.prompting import PLAIN, SMALL_MODEL, reply_style

    assert reply_style(embedded=False) is PLAIN and not PLAIN.examples and PLAIN.max_exchanges is None
    assert reply_style(embedded=True) is SMALL_MODEL
    assert PLAIN.stop == () and PLAIN.max_tokens is None and PLAIN.temperature is None


def test_runaway_guard_stops_after_the_limit_and_at_a_repeat() -> None:
    from voice.prompting import RunawayGuard

    guard = RunawayGuard(max_sentences=3)
    assert guard.accept("Paris is the capital.")
    assert guard.accept("It is big.")
    assert not guard.accept("paris is the capital!")  # the same words again: a loop
    assert not guard.accept("It has a tower.")  # nothing after a loop is spoken
    limited = RunawayGuard(max_sentences=2)
    assert limited.accept("One.") and limited.accept("Two.") and not limited.accept("Three.")
    assert RunawayGuard(None).accept("Anything.")


def test_a_reply_that_echoes_the_one_before_leaves_the_small_models_view() -> None:
    from voice.prompting import SMALL_MODEL, is_echo

    assert is_echo(
        'The answer is not a specific planet, but rather the word "Mars".',
        'The answer is not a specific animal, but rather the word "mice".',
    )
    assert not is_echo("The capital of Italy is Rome.", "The capital of Japan is Tokyo.")
    assert not is_echo("Yes.", "Yes.")  # too short to call it a loop
    conv = Conversation("", style=SMALL_MODEL)
    conv.add_user("What is two plus two?")
    conv.add_assistant("The answer is 4.")
    conv.add_user("What animal says moo?")
    conv.add_assistant('The answer is not a specific animal, but rather the word "mice".')
    conv.add_user("Which planet is red?")
    conv.add_assistant('The answer is not a specific planet, but rather the word "Mars".')
    conv.add_user("What is a noun?")
    seen = [m["content"] for m in conv.messages()[len(SMALL_MODEL.examples) :]]
    assert seen == ["What is two plus two?", "The answer is 4.", "What is a noun?"]
    assert len(conv.turns) == 7  # the session's own history keeps everything that was said
    plain = Conversation("")
    for text in ("Same words here again.", "Same words here again."):
        plain.add_user("q")
        plain.add_assistant(text)
    assert len(plain.messages()) == 4  # a real endpoint's history is left alone


# -- the record is what was heard (issue #23) ----------------------------------------------------

ONE, TWO, THREE = "Dragons are old.", "They sleep on gold.", "They fly at night."


def _with_reply(*sentences: str) -> Conversation:
    conv = Conversation("sys")
    conv.add_user("Tell me about dragons.")
    conv.record_reply(list(sentences))
    return conv


def test_a_cut_reply_keeps_only_what_was_heard_and_the_model_is_told_it_was_cut() -> None:
    conv = _with_reply(ONE, TWO)
    assert conv.cut_reply([ONE, TWO], [ONE]) == ONE
    assert conv.turns[-1] == {"role": "assistant", "content": ONE}
    conv.add_user("And their eggs?")
    assert conv.messages()[-2] == {"role": "assistant", "content": ONE + INTERRUPTED_MARK}
    assert conv.messages_with("Anything else?")[-3]["content"].endswith(INTERRUPTED_MARK)


def test_a_reply_cut_before_anything_was_heard_leaves_no_message() -> None:
    conv = _with_reply(ONE)
    assert conv.cut_reply([ONE], []) == ""
    assert [m["role"] for m in conv.turns] == ["user"]
    assert not conv.interrupted
    # Even one the small model's echo rule had hidden: the next message takes its place, seen.
    conv = Conversation("sys", style=SMALL_MODEL)
    for question in ("Tell me about dragons.", "Tell me about dragons again."):
        conv.add_user(question)
        conv.record_reply([ONE, TWO])
    assert conv.hidden == {0, 1, 2, 3}
    conv.cut_reply([ONE, TWO], [])
    conv.add_user("What do they eat?")
    assert conv.messages()[-1] == {"role": "user", "content": "What do they eat?"}


def test_only_the_newest_reply_is_cut() -> None:
    conv = _with_reply(ONE, TWO)
    assert conv.cut_reply([THREE], []) is None, "not what this reply said"
    conv.add_user("Next?")  # a new turn began: the reply before it is settled
    assert conv.cut_reply([ONE, TWO], [ONE]) is None
    assert conv.turns[1]["content"] == f"{ONE} {TWO}" and not conv.interrupted


def test_a_resumed_reply_is_whole_again_or_cut_again() -> None:
    conv = _with_reply(ONE, TWO, THREE)
    conv.cut_reply([ONE, TWO, THREE], [ONE, TWO])  # cut during TWO
    # Resumed from TWO, the sentence that was playing: heard whole this time.
    assert conv.resume_reply([TWO, THREE], complete=True) == f"{ONE} {TWO} {THREE}"
    assert not conv.interrupted and conv.turns[-1]["content"] == f"{ONE} {TWO} {THREE}"
    conv = _with_reply(ONE, TWO, THREE)
    conv.cut_reply([ONE, TWO, THREE], [ONE, TWO])
    conv.resume_reply([TWO], complete=False)  # the resumed reply was cut in its turn
    assert conv.cut_reply([TWO], [TWO]) == f"{ONE} {TWO}"
    assert conv.interrupted == {1}


def test_answered_pairs_each_reply_with_its_question_after_the_examples() -> None:
    conv = Conversation("sys", style=SMALL_MODEL)
    conv.add_user("What is two plus three?")
    conv.add_assistant("The answer is 2 + 3 = 5.")
    conv.add_user("What do these make?")
    answered = conv.answered()
    assert answered[0] == ("What is the main ingredient of bread?", "The main ingredient of bread is flour.")
    assert answered[-1] == ("What is two plus three?", "The answer is 2 + 3 = 5.")
    assert len(answered) == len(SMALL_MODEL.examples) // 2 + 1
    plain = conv.without_examples()
    assert [m["role"] for m in plain.messages()] == ["system", "user", "assistant", "user"]
    assert len(conv.messages()) == 4 + len(SMALL_MODEL.examples), "the original keeps its examples"


def test_a_copied_answer_is_told_from_a_new_one() -> None:
    answered = [
        ("What is two plus three?", "The answer is 2 + 3 = 5."),
        ("What is the capital of France?", "The capital of France is Paris. It lies on the Seine."),
        *[(q.content, a.content) for q, a in zip(SMALL_MODEL.examples[::2], SMALL_MODEL.examples[1::2], strict=True)],
    ]
    # Issue #23's misheard question, answered with an earlier answer, or an example's.
    assert copied_answer("The answer is 2 + 3 = 5.", "What do these make?", answered)
    assert copied_answer("There are seven days in a week.", "How many lengths done as I do have?", answered)
    assert copied_answer("The main ingredient of bread", "What is the opposite on part?", answered), "a first clause"
    assert copied_answer("It lies on the river Seine.", "Where is it?", answered), "most of its words"
    # New answers that share a pattern with an old one are not copies.
    assert not copied_answer("The capital of Germany is Berlin.", "And Germany?", answered)
    assert not copied_answer("The answer is 4.", "What is two plus two?", answered)
    assert not copied_answer("Yes, it is.", "Is it?", answered), "too short to tell"
    # An answer about what was asked is no parrot, said before or not (the end of a question cut
    # in two, in a browser session under load).
    assert not copied_answer("The capital of France is Paris.", "But it was the capital of France.", answered)
    # An old answer with more after it (the spoken evaluation's misheard "opposite on part").
    answered.append(("What is the opposite of hot?", "A hot air balloon."))
    assert copied_answer("A hot air balloon is a type of aircraft.", "What is the opposite on part?", answered)
    # One shared word, or a number, does not make it an answer to this question.
    answered.append(("And the sky on a clear day?", "The sky on a clear day is blue."))
    assert copied_answer("The sky on a clear day is blue.", "Was it the blue and then to which?", answered)
    assert copied_answer("The answer is 2 + 3 = 5.", "What is 5 minus 3?", answered)
    # The same question again may get the same answer.
    assert not copied_answer("The answer is 2 + 3 = 5.", "What is two plus three?", answered)
    # A pleasantry said again is no answer copied (the small model opens many replies with one).
    answered.append(("My name is Ada. Say hi.", "I'm glad you're here. I'm a language tutor."))
    assert not copied_answer("I'm glad you're here.", "What is my name?", answered)
    greeted = [*answered, ("Hi", "Hello there, nice to meet you.")]
    assert not copied_answer("Hello there, nice to meet you.", "What is my name?", greeted)
    assert copied_answer("I'm a language tutor.", "What is my name?", answered), "two topic words"
