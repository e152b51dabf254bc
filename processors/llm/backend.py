"""What the analysis needs from a backend: batched chat completions and token counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from processors.base import PermanentError, ProcessorError, TransientError
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

    def complete_each(
        self,
        conversations: list[Conversation],
        *,
        max_new_tokens: int,
        temperature: float,
        check_stop: Callable[[], None] = lambda: None,
    ) -> list[Completion | ProcessorError]:
        """Like `complete`, but a conversation that fails on its own (a request the server
        rejected) is its entry, so that it fails only its job; a failure of the whole call
        (out of memory on the device) still raises."""


def combined_failure(outcomes: list[Completion | ProcessorError]) -> ProcessorError | None:
    """The error a set of outcomes fails with: None when all succeeded; else a permanent
    failure when there is one (retrying would not help), else a transient one carrying the
    longest `retry_after` asked for."""
    errors = [o for o in outcomes if isinstance(o, ProcessorError)]
    if not errors:
        return None
    permanent = [e for e in errors if isinstance(e, PermanentError)]
    if permanent:
        return permanent[0]
    waits = [e.retry_after for e in errors if getattr(e, "retry_after", None) is not None]
    return TransientError(str(errors[0]), retry_after=max(waits) if waits else None)
