"""`diarization`: who spoke when, and with `transcribe: true`, every word with its speaker.

Stages (reported as progress): decode, vad, embed, cluster, transcribe, align. Writes an
RTTM file and a plain transcript under `<output_dir>/<job_id>/`.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from config import Settings
from processors.audio import SAMPLE_RATE
from processors.audio.clustering import SpeakerHints
from processors.audio.embedding import check_backend, load_embedder
from processors.audio.pipeline import (
    assign_speakers,
    decode_stage,
    diarize,
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
from processors.base import Context, Params, Processor
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


@register
class DiarizationProcessor(Processor):
    """Speakers, their turns, and (optionally) their words."""

    name = "diarization"
    Params = DiarizationParams

    @classmethod
    def check_config(cls, settings: Settings) -> None:
        check_audio_config(settings)
        check_backend(settings.audio.embedding_backend)

    def load(self, device: str) -> None:
        audio = self.settings.audio
        self.device = device
        self.embedder = load_embedder(audio.embedding_backend, device, audio.embedding_model)
        self.whisper = load_whisper(audio, device)

    def process(self, params: DiarizationParams, ctx: Context) -> dict[str, Any]:
        audio_settings = self.settings.audio
        hints = SpeakerHints(params.num_speakers, params.min_speakers, params.max_speakers)
        hints.bounds()  # contradictory hints fail before any decoding
        timings: dict[str, float] = {}
        path = ctx.input_path(params.audio_path)
        stt = params.transcribe
        audio = decode_stage(path, audio_settings, ctx, timings, span=(0.0, 0.05))
        result = diarize(
            audio,
            self.embedder,
            audio_settings,
            hints,
            ctx,
            timings,
            span=(0.05, 0.4 if stt else 0.95),
        )
        turns = result.turns
        words: list[Word] = []
        language: str | None = None
        if stt:
            started = time.perf_counter()
            ctx.progress(0.4, "transcribe")
            segments, language = transcribe(
                self.whisper,
                audio,
                regions=result.regions,
                chunk_seconds=audio_settings.chunk_seconds,
                language=params.language or default_language(audio_settings.whisper_model),
                beam_size=params.beam_size or audio_settings.beam_size,
                on_progress=lambda f: ctx.progress(round(0.4 + 0.55 * f, 4), "transcribe"),
                check_stop=ctx.check_stop,
            )
            timings["transcribe"] = time.perf_counter() - started
            words = [w for s in segments for w in s.words]
        started = time.perf_counter()
        ctx.progress(0.95, "align")
        texts: list[list[str]] = [[] for _ in turns]
        for word, index in zip(words, assign_speakers(words, turns), strict=True):
            if index >= 0:
                word.speaker = turns[index].speaker
                texts[index].append(word.word)
        segments_out = [
            {
                "start": round(t.start, 3),
                "end": round(t.end, 3),
                "speaker": t.speaker,
                "text": " ".join(parts),
            }
            for t, parts in zip(turns, texts, strict=True)
        ]
        text = "\n".join(f"{s['speaker']}: {s['text']}" for s in segments_out if s["text"])
        speakers = _speaker_stats(turns, words)
        rttm = ctx.output_path(path.stem + ".rttm")
        rttm.write_text(format_rttm(turns, path.stem), encoding="utf-8")
        transcript_body = (
            text
            if stt
            else "\n".join(
                f"[{s['start']:.2f}-{s['end']:.2f}] {s['speaker']}" for s in segments_out
            )
        )
        transcript = write_text(ctx, path, transcript_body + "\n" if transcript_body else "")
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
            "duration": round(audio.size / SAMPLE_RATE, 3),
            "language": language,
            "num_speakers": counts["speakers"],
            "speakers": speakers,
            "segments": segments_out,
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
