"""The demo's jobs: which processors can show themselves here, their inputs, and a
readable summary of each result."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config import Settings

Log = Callable[[str], None]
LLM_TASKS = {
    "summary": "Summarize the meeting in one sentence.",
    "decision": "What launch date did they agree on? Answer in a few words.",
    "action_items": {
        "prompt": "List at most three action items as a JSON array of short strings.",
        "schema": {"type": "array", "items": {"type": "string"}},
    },
}
FALLBACK_TRANSCRIPT = (
    "SPEAKER_00: Let us decide when we launch the new mobile app.\n"
    "SPEAKER_01: The second week of March works, if testing finishes on time.\n"
    "SPEAKER_02: Testing needs two more engineers. Otherwise we slip to April.\n"
    "SPEAKER_00: Then we hire two contractors and keep the March date."
)


@dataclass(frozen=True)
class DemoJob:
    name: str
    slug: str
    processor: str
    params: dict[str, Any] | Callable[[dict[str, str]], dict[str, Any]]
    """The params, or a function of the ids of the jobs enqueued before it (by name)."""


def unavailable(name: str, settings: Settings) -> str | None:
    """Why processor `name` cannot run here (its extra or model missing), else None."""
    from processors.registry import get_processor_class

    try:
        get_processor_class(name).check_config(settings)
        if name == "llm_analysis" and settings.llm.backend == "local":
            from processors.llm.local import resolve_model_source

            resolve_model_source(settings.llm.model)
    except Exception as exc:  # an ImportError, a ConfigError: the reason is the point
        return str(exc).splitlines()[0]
    return None


def demo_jobs(
    settings: Settings, only: set[str] | None = None, log: Log = print
) -> tuple[list[DemoJob], list[str]]:
    """The demo jobs to run (their input files made under the media root), and a one-line
    note for each processor skipped; `only` limits them to those processors."""
    from worker import demo_media

    def wanted(name: str) -> bool:
        return only is None or name in only

    jobs = [
        DemoJob(f"echo {text}", f"echo-{text}", "echo", {"text": text})
        for text in ("hello", "from", "stoker")
        if wanted("echo")
    ]
    skipped: list[str] = []
    media = settings.media_root
    assert media is not None
    diarize = unavailable("diarization", settings) if wanted("diarization") else "-"
    if diarize is None and (missing := demo_media.tools_missing()):
        diarize = f"needs {', '.join(missing)} on PATH"
    if diarize is None:
        seconds = demo_media.make_conversation(media / "demo" / "conversation.wav")
        log(f"made demo/conversation.wav: {seconds:.0f} s, 3 voices (espeak-ng)")
        jobs.append(
            DemoJob(
                "diarization",
                "diarization",
                "diarization",
                {"audio_path": "demo/conversation.wav", "transcribe": True, "num_speakers": 3},
            )
        )
    elif diarize != "-":
        skipped.append(f"diarization: {diarize}")
    if not wanted("video_pipeline"):
        pass
    elif (reason := unavailable("video_pipeline", settings)) is None:
        cuts = demo_media.make_clip(media / "demo" / "clip.mp4")
        log(f"made demo/clip.mp4: {len(demo_media.SHOTS)} shots, hard cuts at frames {cuts}")
        jobs.append(
            DemoJob("video_pipeline", "video", "video_pipeline", {"video_path": "demo/clip.mp4"})
        )
    else:
        skipped.append(f"video_pipeline: {reason}")
    if not wanted("llm_analysis"):
        pass
    elif (reason := unavailable("llm_analysis", settings)) is None:
        jobs.append(DemoJob("llm_analysis", "llm", "llm_analysis", _llm_params))
    else:
        skipped.append(f"llm_analysis: {reason}")
    return jobs, skipped


def _llm_params(ids: dict[str, str]) -> dict[str, Any]:
    """Over the diarized transcript when there is one, else a short written one."""
    source = (
        {"from_job": ids["diarization"]}
        if "diarization" in ids
        else {"transcript": FALLBACK_TRANSCRIPT}
    )
    return {**source, "tasks": LLM_TASKS, "max_new_tokens": 64}


def summarize(processor: str, result: Any) -> list[str]:
    """A few readable lines about a processor's result."""
    if not isinstance(result, dict):
        return [json.dumps(result, default=str)[:200]]
    if processor == "diarization":
        return _diarization(result)
    if processor == "video_pipeline":
        scenes = result.get("scenes") or []
        spans = ", ".join(f"{s['start_seconds']:.1f}-{s['end_seconds']:.1f} s" for s in scenes)
        fps = result.get("processing_fps")
        return [
            f"{len(scenes)} scenes: {spans}",
            f"{result.get('frames_read')} frames at {fps} fps",
        ]
    if processor == "llm_analysis":
        errors = result.get("errors") or {}
        lines = [
            f"{task}: failed: {_short(errors[task].get('error'))}; the model wrote "
            f"{_short(errors[task].get('repaired'), 60)}"
            if task in errors
            else f"{task}: {_short(answer)}"
            for task, answer in (result.get("results") or {}).items()
        ]
        meta = result.get("metadata") or {}
        tokens = (meta.get("usage") or {}).get("total_tokens")
        lines.append(f"{meta.get('model')}: {tokens} tokens in {meta.get('latency_s')} s")
        return lines
    return [json.dumps(result, default=str)[:200]]


def _diarization(result: dict[str, Any]) -> list[str]:
    segments = result.get("segments") or []
    lines = [
        f"{result.get('num_speakers')} speakers, {len(segments)} turns, "
        f"{result.get('duration', 0):.1f} s of audio"
    ]
    for s in segments[:8]:
        lines.append(
            f"{s['start']:6.1f}-{s['end']:5.1f} s  {s['speaker']}: {_short(s.get('text'), 70)}"
        )
    if len(segments) > 8:
        lines.append(f"... {len(segments) - 8} more turns")
    return lines


def _short(value: Any, limit: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
