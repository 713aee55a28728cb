"""One session's conversation history, bounded so prompts never grow without limit."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from voice.prompting import PLAIN, ReplyStyle, is_echo


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

    def add_user(self, text: str) -> None:
        """Append the user's message."""
        self.turns.append({"role": "user", "content": text})

    def withdraw_user(self, text: str) -> None:
        """Take back the newest message if it is the user's ``text`` with no reply after it (a
        turn the user went on with: the continued turn says it again, whole)."""
        if self.turns and self.turns[-1] == {"role": "user", "content": text}:
            self.turns.pop()

    def add_assistant(self, text: str) -> None:
        """Append what the assistant actually said (the spoken part, after a barge-in)."""
        if not text.strip():
            return
        self.turns.append({"role": "assistant", "content": text})
        if self.style.hide_echoes:
            earlier = [i for i, m in enumerate(self.turns[:-1]) if m["role"] == "assistant" and i not in self.hidden]
            if earlier and is_echo(text, self.turns[earlier[-1]]["content"]):
                # Both exchanges (each reply and the user message before it) leave the model's view.
                for i in (earlier[-1], len(self.turns) - 1):
                    self.hidden.update({i, i - 1} if i and self.turns[i - 1]["role"] == "user" else {i})

    def messages_with(self, user_text: str) -> list[dict[str, str]]:
        """:meth:`messages` as they would be after :meth:`add_user` (``user_text``), without adding it."""
        turns = [*self.turns, {"role": "user", "content": user_text}]
        return dataclasses.replace(self, turns=turns, hidden=set(self.hidden)).messages()

    def messages(self) -> list[dict[str, str]]:
        """The OpenAI chat messages to send: system prompt, then recent turns within budget."""
        budget = self.max_chars
        kept: list[dict[str, str]] = []
        recent = [m for i, m in enumerate(self.turns) if i not in self.hidden]
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

    def prefix(self) -> list[dict[str, str]]:
        """What every request starts with (system prompt and examples): the part the embedded
        server keeps in its prompt cache from one turn to the next."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt.strip() else []
        return system + [{"role": m.role, "content": m.content} for m in self.style.examples]
