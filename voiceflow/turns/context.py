"""The conversation as the LLM sees it: what the caller said and what they actually heard."""

from __future__ import annotations

from dataclasses import dataclass, field

from voiceflow.frames import Message


@dataclass
class Conversation:
    system: str
    max_turns: int
    history: list[Message] = field(default_factory=list)

    def add_user(self, text: str) -> None:
        if self.history and self.history[-1].role == "user":
            self.history[-1] = Message("user", f"{self.history[-1].content} {text}")
        else:
            self.history.append(Message("user", text))
        self._trim()

    def add_assistant(self, text: str, *, interrupted: bool = False) -> None:
        """Record what the caller heard; nothing if nothing was heard.

        A cut-off reply ends in "…", the way a transcript shows speech that broke off. (A
        bracketed note such as "[interrupted]" reads better to people, but small models copy it
        into their next reply, and the TTS then says it aloud.)
        """
        text = text.strip()
        if not text:
            return
        content = text if not interrupted or text.endswith("…") else f"{text}…"
        self.history.append(Message("assistant", content, interrupted=interrupted))
        self._trim()

    def add_tool_round(self, messages: list[Message]) -> None:
        """Record a round of tool use (the model's calls, then their results), as it finished."""
        self.history.extend(messages)
        self._trim()

    def take_last_user(self) -> str:
        """Remove and return the last caller message (their turn turned out not to be over).

        Tool rounds recorded after it stay: the tools did run, whatever the caller says next.
        """
        for index in range(len(self.history) - 1, -1, -1):
            role = self.history[index].role
            if role == "user":
                return self.history.pop(index).content
            if role != "tool" and not self.history[index].tool_calls:
                break
        return ""

    def messages(self) -> list[Message]:
        return [Message("system", self.system), *self.history]

    def _trim(self) -> None:
        excess = len(self.history) - 2 * self.max_turns
        if excess > 0:
            del self.history[:excess]
            while self.history and self.history[0].role != "user":
                self.history.pop(0)
