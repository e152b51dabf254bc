"""What the analysis needs from a backend: batched chat completions and token counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from processors.llm.prompts import Conversation


@dataclass(frozen=True)
class Completion:
    """One answer and the tokens it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int


class Backend(Protocol):
    """A loaded model (local) or a configured server (OpenAI-compatible)."""

    provider: str
    model_name: str

    @property
    def context_tokens(self) -> int | None:
        """The context window, or None when unknown (then transcripts are never chunked)."""

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` (an estimate where the backend has no tokenizer)."""

    def count_prompt_tokens(self, conversation: Conversation) -> int:
        """Tokens the formatted conversation takes as a prompt."""

    def complete(
        self,
        conversations: list[Conversation],
        *,
        max_new_tokens: int,
        temperature: float,
        check_stop: Callable[[], None] = lambda: None,
    ) -> list[Completion]:
        """Answer every conversation, batched or concurrently; results in input order."""
