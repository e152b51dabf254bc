"""`diarization`: who spoke when, and with `transcribe: true`, every word with its speaker.

Stages (reported as progress): decode, vad, embed, cluster, transcribe, align. Writes an
RTTM file and a plain transcript under `<output_dir>/<job_id>/`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from config import Settings
from processors.audio import SAMPLE_RATE
from processors.audio.clustering import SpeakerHints
from processors.audio.embedding import check_backend, load_embedder
from processors.audio.pipeline import (
    SpeechWindows,
    assign_speakers,
    decode_stage,
    embed_jobs,
    find_speakers,
    speech_windows,
    write_text,
)
from processors.audio.rttm import Turn, format_rttm
from processors.audio.transcription import (
    Word,
    check_audio_config,
    default_language,
    load_whisper,
    transcribe,
)
from processors.base import Context, Item, Params, Processor
from processors.registry import register


class DiarizationParams(Params):
    audio_path: str
    """A file under the media root: wav, flac, mp3, m4a, ogg, or a video with audio."""
    transcribe: bool = False
    """Also transcribe, and give every word the speaker whose turn covers it."""
    num_speakers: int | None = Field(default=None, ge=1)
    min_speakers: int | None = Field(default=None, ge=1)
    max_speakers: int | None = Field(default=None, ge=1)
    language: str | None = None
    """With `transcribe`: ISO code; default `en` for `*.en` models, else detected."""
    beam_size: int | None = Field(default=None, ge=1, le=10)


CPU_EMBED_BATCH = 32
"""Most embedding windows per call on a CPU: measured (GE2E, one thread, 10-second clips
batched 8 at a time) 2.47 s of CPU for 32 jobs in batches of 32, 2.80 s in batches of 64
(the STFT and LSTM working set outgrows the cache)."""


@dataclass
class PreparedAudio:
    """What `prepare` hands to `process`: the decoded audio and its embedding windows."""

    params: DiarizationParams
    path: Path
    hints: SpeakerHints
    windows: SpeechWindows
    timings: dict[str, float]


def _embed_span(params: DiarizationParams) -> tuple[float, float]:
    """Progress fractions at which the embedding stage starts and ends."""
    return (0.085, 0.365) if params.transcribe else (0.14, 0.86)


@register
class DiarizationProcessor(Processor):
    """Speakers, their turns, and (optionally) their words."""

    name = "diarization"
    Params = DiarizationParams
    batch_size = 8

    @classmethod
    def check_config(cls, settings: Settings) -> None:
        check_audio_config(settings)
        check_backend(settings.audio.embedding_backend)

    def load(self, device: str) -> None:
        audio = self.settings.audio
        self.device = device
        self.embedder = load_embedder(audio.embedding_backend, device, audio.embedding_model)
        self.whisper = load_whisper(audio, device)

    def prepare(self, params: DiarizationParams, ctx: Context) -> PreparedAudio:
        """Decode and VAD (CPU only): safe beside another job's `process`."""
        hints = SpeakerHints(params.num_speakers, params.min_speakers, params.max_speakers)
        hints.bounds()  # contradictory hints fail before any decoding
        timings: dict[str, float] = {}
        path = ctx.input_path(params.audio_path)
        audio = decode_stage(path, self.settings.audio, ctx, timings, span=(0.0, 0.05))
        end = _embed_span(params)[0]
        windows = speech_windows(audio, self.settings.audio, ctx, timings, span=(0.05, end))
        return PreparedAudio(params, path, hints, windows, timings)

    def process(self, params: DiarizationParams | PreparedAudio, ctx: Context) -> dict[str, Any]:
        job = params if isinstance(params, PreparedAudio) else self.prepare(params, ctx)
        audio = self.settings.audio
        lo, hi = _embed_span(job.params)

        def on_batch(_: int, fraction: float) -> None:
            ctx.check_stop()
            ctx.progress(round(lo + fraction * (hi - lo), 4), "embed")

        started = time.perf_counter()
        ctx.progress(lo, "embed")
        embeddings = embed_jobs(
            self.embedder, [job.windows], audio.window_seconds, self._embed_batch(), on_batch
        )[0]
        job.timings["embed"] = time.perf_counter() - started
        return self._finish(job, embeddings, ctx)

    def process_batch(self, items: list[Item]) -> list[Any]:
        """The speaker-embedding windows of all jobs in one stream of batches, then each
        job's clustering (and transcription) on its own: results as `process` gives."""
        jobs: list[PreparedAudio | Exception] = []
        for item in items:
            try:
                prepared = item.input
                if not isinstance(prepared, PreparedAudio):
                    prepared = self.prepare(item.params, item.ctx)
                jobs.append(prepared)
            except Exception as exc:
                jobs.append(exc)
        ready = [(i, j) for i, j in enumerate(jobs) if isinstance(j, PreparedAudio)]
        started = time.perf_counter()

        def on_batch(index: int, fraction: float) -> None:
            i, job = ready[index]
            lo, hi = _embed_span(job.params)
            items[i].ctx.progress(round(lo + fraction * (hi - lo), 4), "embed")

        audio = self.settings.audio
        embeddings = embed_jobs(
            self.embedder,
            [job.windows for _, job in ready],
            audio.window_seconds,
            self._embed_batch(),
            on_batch,
        )
        total = max(1, sum(len(job.windows.starts) for _, job in ready))
        elapsed = time.perf_counter() - started
        results: list[Any] = list(jobs)
        for (i, job), vectors in zip(ready, embeddings, strict=True):
            job.timings["embed"] = elapsed * len(job.windows.starts) / total
            try:
                items[i].ctx.check_stop()
                results[i] = self._finish(job, vectors, items[i].ctx)
            except Exception as exc:
                results[i] = exc
        return results

    def _embed_batch(self) -> int:
        """Windows per model call: `AUDIO_EMBED_BATCH_SIZE`, at most CPU_EMBED_BATCH on a
        CPU, where larger batches cost more per window."""
        size = self.settings.audio.embed_batch_size
        return size if self.device.startswith("cuda") else min(size, CPU_EMBED_BATCH)

    def _words(self, job: PreparedAudio, ctx: Context) -> tuple[list[Word], str | None]:
        """Every word of the recording, timed, and the language."""
        params, audio_settings = job.params, self.settings.audio
        started = time.perf_counter()
        ctx.progress(0.4, "transcribe")
        segments, language = transcribe(
            self.whisper,
            job.windows.audio,
            regions=job.windows.regions,
            chunk_seconds=audio_settings.chunk_seconds,
            language=params.language or default_language(audio_settings.whisper_model),
            beam_size=params.beam_size or audio_settings.beam_size,
            on_progress=lambda f: ctx.progress(round(0.4 + 0.55 * f, 4), "transcribe"),
            check_stop=ctx.check_stop,
        )
        job.timings["transcribe"] = time.perf_counter() - started
        return [w for s in segments for w in s.words], language

    def _finish(self, job: PreparedAudio, embeddings: Any, ctx: Context) -> dict[str, Any]:
        """Clustering, transcription if asked, alignment and the output files."""
        params, timings, audio_settings = job.params, job.timings, self.settings.audio
        stt = params.transcribe
        span = (_embed_span(params)[1], 0.4 if stt else 0.95)
        turns = find_speakers(
            job.windows, embeddings, audio_settings, job.hints, ctx, timings, span
        ).turns
        words, language = self._words(job, ctx) if stt else ([], None)
        started = time.perf_counter()
        ctx.progress(0.95, "align")
        segments = _aligned(turns, words)
        text = "\n".join(f"{s['speaker']}: {s['text']}" for s in segments if s["text"])
        speakers = _speaker_stats(turns, words)
        rttm = ctx.output_path(job.path.stem + ".rttm")
        rttm.write_text(format_rttm(turns, job.path.stem), encoding="utf-8")
        body = (
            text
            if stt
            else "\n".join(f"[{s['start']:.2f}-{s['end']:.2f}] {s['speaker']}" for s in segments)
        )
        transcript = write_text(ctx, job.path, body + "\n" if body else "")
        timings["align"] = time.perf_counter() - started
        ctx.progress(1.0, "align")
        counts = {"speakers": len(speakers), "segments": len(turns), "words": len(words)}
        summary = (
            f"Speakers: {counts['speakers']}, Segments: {counts['segments']}, "
            f"Total words: {counts['words']}"
        )
        ctx.log.info("diarized", audio=params.audio_path, summary=summary)
        return {
            "audio_path": params.audio_path,
            "duration": round(job.windows.audio.size / SAMPLE_RATE, 3),
            "language": language,
            "num_speakers": counts["speakers"],
            "speakers": speakers,
            "segments": segments,
            "words": [w.as_dict() for w in words],
            "text": text,
            "counts": counts,
            "summary": summary,
            "rttm_path": str(rttm),
            "transcript_path": str(transcript),
            "models": {
                "embedding": audio_settings.embedding_backend,
                "whisper": audio_settings.whisper_model if stt else None,
            },
            "timings": {k: round(v, 3) for k, v in timings.items()},
        }


def _aligned(turns: list[Turn], words: list[Word]) -> list[dict[str, Any]]:
    """Each turn with the words whose speaker it gives (words are labelled in place)."""
    texts: list[list[str]] = [[] for _ in turns]
    for word, index in zip(words, assign_speakers(words, turns), strict=True):
        if index >= 0:
            word.speaker = turns[index].speaker
            texts[index].append(word.word)
    return [
        {"start": round(t.start, 3), "end": round(t.end, 3), "speaker": t.speaker,
         "text": " ".join(parts)}
        for t, parts in zip(turns, texts, strict=True)
    ]  # fmt: skip


def _speaker_stats(turns: list[Turn], words: list[Word]) -> list[dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for turn in turns:
        entry = stats.setdefault(
            turn.speaker, {"label": turn.speaker, "speaking_time": 0.0, "segments": 0, "words": 0}
        )
        entry["speaking_time"] += turn.end - turn.start
        entry["segments"] += 1
    for word in words:
        if word.speaker in stats:
            stats[word.speaker]["words"] += 1
    for entry in stats.values():
        entry["speaking_time"] = round(entry["speaking_time"], 3)
    return [stats[label] for label in sorted(stats)]
