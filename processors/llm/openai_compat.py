"""OpenAI-compatible backend: `POST {base_url}/chat/completions` (vLLM, Ollama,
llama.cpp's server, OpenAI).

Error mapping: 429, 408, 5xx, timeouts and connection failures raise `TransientError`
(with the server's `Retry-After` when given); other 4xx raise `PermanentError`. A 2xx
response whose body is not a chat completion also raises `TransientError`: it is most
often a proxy or a server mid-restart answering, and the worker's bounded retries cover it.
The API key goes only into the Authorization header; it is redacted from any text of the
server's that ends up in an error message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from processors.base import PermanentError, ProcessorError, TransientError
from processors.llm.backend import Completion, combined_failure
from processors.llm.prompts import Conversation

#: Used only to chunk transcripts when LLM_CONTEXT_TOKENS is set: the server's tokenizer
#: is unknown here, and ~4 characters per token is the usual rule of thumb for English.
CHARS_PER_TOKEN = 4


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


class OpenAICompatBackend:
    """A chat-completions client; a job's (or a batch's) requests go out concurrently."""

    provider = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout: float,
        concurrency: int = 8,
        context_tokens: int = 0,
    ) -> None:
        self.model_name = model
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.concurrency = concurrency
        self._context = context_tokens or None
        self._secret = api_key or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url + "/", headers=headers, timeout=timeout, follow_redirects=False
        )

    def __repr__(self) -> str:
        return f"OpenAICompatBackend(base_url={self.base_url!r}, model={self.model_name!r})"

    @property
    def context_tokens(self) -> int | None:
        return self._context

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def count_prompt_tokens(self, conversation: Conversation) -> int:
        # A few tokens per message for the role markers the server's template adds.
        return sum(self.count_tokens(m["content"]) + 4 for m in conversation)

    def close(self) -> None:
        self._client.close()

    def complete(
        self,
        conversations: list[Conversation],
        *,
        max_new_tokens: int,
        temperature: float,
        check_stop: Callable[[], None] = lambda: None,
    ) -> list[Completion]:
        """Send every conversation, up to `concurrency` at a time. When some fail, a
        permanent failure wins over transient ones (retrying would not help)."""
        outcomes = self.complete_each(
            conversations,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            check_stop=check_stop,
        )
        failure = combined_failure(outcomes)
        if failure is not None:
            raise failure
        return [o for o in outcomes if isinstance(o, Completion)]

    def complete_each(
        self,
        conversations: list[Conversation],
        *,
        max_new_tokens: int,
        temperature: float,
        check_stop: Callable[[], None] = lambda: None,
    ) -> list[Completion | ProcessorError]:
        """Send every conversation, up to `concurrency` at a time (a batch of jobs sends
        all its jobs' conversations here, so the bound holds for the whole batch); a
        failed request is its error in the list."""
        check_stop()

        def one(conversation: Conversation) -> Completion | ProcessorError:
            try:
                return self._request(conversation, max_new_tokens, temperature)
            except ProcessorError as exc:
                return exc

        workers = max(1, min(self.concurrency, len(conversations)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-http") as pool:
            return list(pool.map(one, conversations))

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text

    def _request(
        self, conversation: Conversation, max_new_tokens: int, temperature: float
    ) -> Completion:
        body = {
            "model": self.model_name,
            "messages": conversation,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
        }
        try:
            response = self._client.post("chat/completions", json=body)
        except httpx.TimeoutException:
            raise TransientError(f"LLM server timed out after {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach the LLM server: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status == 408 or status >= 500:
            reason = "rate-limited the request" if status == 429 else "failed"
            raise TransientError(
                f"LLM server {reason} (HTTP {status}): {self._server_message(response)}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status >= 400:
            raise PermanentError(
                f"LLM server rejected the request (HTTP {status}): {self._server_message(response)}"
            )
        if status >= 300:
            raise PermanentError(f"LLM server answered HTTP {status}; check LLM_BASE_URL")
        return self._parse(response)

    def _server_message(self, response: httpx.Response) -> str:
        try:
            error = response.json().get("error")
            message = error.get("message") if isinstance(error, dict) else error
        except (ValueError, AttributeError):
            message = None
        text = str(message) if message else response.text
        return self._redact(" ".join(text.split())[:300]) or "(no message)"

    def _parse(self, response: httpx.Response) -> Completion:
        try:
            data: Any = response.json()
            message = data["choices"][0]["message"]
            content = message.get("content") or ""
            if not isinstance(content, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            snippet = self._redact(" ".join(response.text.split())[:200])
            raise TransientError(
                f"malformed chat completion from the LLM server ({type(exc).__name__}): {snippet!r}"
            ) from None
        usage = data.get("usage") if isinstance(data, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        return Completion(
            text=content.strip(),
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
        )


def _int(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0
