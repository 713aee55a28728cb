"""One session's conversation history, bounded so prompts never grow without limit."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from voice.prompting import PLAIN, ReplyStyle, is_echo

# How a reply the user cut is shown to the model on later turns: what was heard, then this, so
# the model knows the rest was never said (the user did not hear it and may ask again).
INTERRUPTED_MARK = " [interrupted by the user]"


@dataclass
class _ReplyRecord:
    """The newest reply's message: where it is in ``turns`` and the sentences it holds."""

    index: int
    sentences: list[str]
    interrupted: bool = False


@dataclass
class Conversation:
    """System prompt plus the most recent turns that fit in ``max_chars``.

    The oldest turns are dropped first; the newest user message is always kept, cut to
    ``max_chars`` if it alone is longer (a 100 kB typed turn still gets an answer).
    ``style`` adds its example exchanges after the system prompt (they are sent, never stored
    in ``turns``) and may bound the history to its last ``max_exchanges`` exchanges, so one bad
    reply of a small model does not steer the rest of the conversation.
    """

    system_prompt: str
    max_chars: int = 4000
    turns: list[dict[str, str]] = field(default_factory=list)
    style: ReplyStyle = PLAIN
    hidden: set[int] = field(default_factory=set)  # indices in turns the model no longer sees
    interrupted: set[int] = field(default_factory=set)  # indices of replies the user cut
    _reply: _ReplyRecord | None = field(default=None, repr=False)  # the newest reply, still amendable

    def add_user(self, text: str) -> None:
        """Append the user's message (the reply before it can no longer be amended)."""
        self._reply = None
        self.turns.append({"role": "user", "content": text})

    def withdraw_user(self, text: str) -> None:
        """Take back the newest message if it is the user's ``text`` with no reply after it (a
        turn the user went on with: the continued turn says it again, whole)."""
        if self.turns and self.turns[-1] == {"role": "user", "content": text}:
            self.turns.pop()

    def record_reply(self, sentences: list[str]) -> None:
        """Append a reply: the sentences whose playback started.  A barge-in may still cut it
        (:meth:`cut_reply`), and a resumed reply finish it (:meth:`resume_reply`)."""
        self._reply = None
        if self.add_assistant(" ".join(sentences)):
            self._reply = _ReplyRecord(len(self.turns) - 1, list(sentences))

    def cut_reply(self, said: list[str], heard: list[str]) -> str | None:
        """The newest reply, which went to playback as ``said``, was cut: only ``heard`` reached
        the user.  It is kept as that, marked interrupted (removed if nothing was heard).  The
        text it is now remembered as, or None if ``said`` is not the newest reply."""
        reply = self._reply
        if reply is None or not said or reply.sentences[len(reply.sentences) - len(said) :] != said:
            return None
        kept = reply.sentences[: len(reply.sentences) - len(said)]
        self._set_reply(reply, kept + heard, interrupted=True)
        return " ".join(reply.sentences)

    def resume_reply(self, said: list[str], complete: bool) -> str | None:
        """A cut reply was spoken again from the sentence that was playing: ``said`` is what went
        to playback this time, ``complete`` if that was all of the rest.  The text it is now
        remembered as, or None if there was no cut reply to resume."""
        reply = self._reply
        if reply is None or not reply.interrupted or not said:
            return None
        kept = list(reply.sentences)
        if kept and kept[-1] == said[0]:  # the sentence that was playing, heard in part, came again
            kept.pop()
        self._set_reply(reply, kept + said, interrupted=not complete)
        return " ".join(reply.sentences)

    def _set_reply(self, reply: _ReplyRecord, sentences: list[str], *, interrupted: bool) -> None:
        was_there = reply.index < len(self.turns) and reply.sentences
        reply.sentences, reply.interrupted = sentences, interrupted
        text = " ".join(sentences)
        if was_there and not text:  # the newest message: nothing else moves
            del self.turns[reply.index]
            self.hidden.discard(reply.index)  # the index is the next message's now
        elif not was_there and text:
            self.turns.insert(reply.index, {"role": "assistant", "content": text})
        elif text:
            self.turns[reply.index] = {"role": "assistant", "content": text}
        self.interrupted.discard(reply.index)
        if interrupted and text:
            self.interrupted.add(reply.index)

    def add_assistant(self, text: str) -> bool:
        """Append what the assistant said; False (nothing appended) if ``text`` is blank."""
        if not text.strip():
            return False
        self.turns.append({"role": "assistant", "content": text})
        if self.style.hide_echoes:
            earlier = [i for i, m in enumerate(self.turns[:-1]) if m["role"] == "assistant" and i not in self.hidden]
            if earlier and is_echo(text, self.turns[earlier[-1]]["content"]):
                # Both exchanges (each reply and the user message before it) leave the model's view.
                for i in (earlier[-1], len(self.turns) - 1):
                    self.hidden.update({i, i - 1} if i and self.turns[i - 1]["role"] == "user" else {i})
        return True

    def messages_with(self, user_text: str) -> list[dict[str, str]]:
        """:meth:`messages` as they would be after :meth:`add_user` (``user_text``), without adding it."""
        turns = [*self.turns, {"role": "user", "content": user_text}]
        return dataclasses.replace(
            self, turns=turns, hidden=set(self.hidden), interrupted=set(self.interrupted), _reply=None
        ).messages()

    def messages(self) -> list[dict[str, str]]:
        """The OpenAI chat messages to send: system prompt, then recent turns within budget."""
        budget = self.max_chars
        kept: list[dict[str, str]] = []
        recent = [
            {**m, "content": m["content"] + INTERRUPTED_MARK} if i in self.interrupted else m
            for i, m in enumerate(self.turns)
            if i not in self.hidden
        ]
        if self.style.max_exchanges is not None:
            # The newest user message plus 1..max_exchanges (user, assistant) pairs before it,
            # dropped in blocks rather than one per turn: most turns then only append to what the
            # model saw the turn before, and llama.cpp's prompt cache (the common prefix) holds.
            earlier = (len(recent) - 1) // 2
            keep = (earlier - 1) % self.style.max_exchanges + 1 if earlier else 0
            recent = recent[-(2 * keep + 1) :]
        for message in reversed(recent):
            size = len(message["content"])
            if size > budget:
                if not kept:  # the newest message must survive, truncated
                    kept.append({**message, "content": message["content"][:budget]})
                break
            kept.append(message)
            budget -= size
        kept.reverse()
        while kept and kept[0]["role"] != "user":  # a history never opens on the assistant
            kept.pop(0)
        return self.prefix() + kept

    def answered(self) -> list[tuple[str, str]]:
        """(question, answer) pairs the model has been shown: the style's examples, then every
        earlier exchange of the conversation (what a copied reply would come from)."""
        examples = self.style.examples
        pairs = [(q.content, a.content) for q, a in zip(examples[::2], examples[1::2], strict=True)]
        turns = self.turns
        pairs += [
            (turns[i - 1]["content"], m["content"])
            for i, m in enumerate(turns)
            if i and m["role"] == "assistant" and turns[i - 1]["role"] == "user"
        ]
        return pairs

    def without_examples(self) -> Conversation:
        """This conversation as a style without example exchanges would send it (a copy)."""
        style = dataclasses.replace(self.style, examples=())
        return dataclasses.replace(
            self, style=style, turns=list(self.turns), hidden=set(self.hidden), interrupted=set(self.interrupted)
        )

    def prefix(self) -> list[dict[str, str]]:
        """What every request starts with (system prompt and examples): the part the embedded
        server keeps in its prompt cache from one turn to the next."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt.strip() else []
        return system + [{"role": m.role, "content": m.content} for m in self.style.examples]
