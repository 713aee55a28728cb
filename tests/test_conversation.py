"""Conversation history: system prompt, recent turns within a size budget."""

from __future__ import annotations

from voice.conversation import Conversation


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
