"""The demo: every installed processor shows itself; a missing one is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from tests.firsthour.conftest import Zero
from worker import demo_jobs
from worker.demo_jobs import summarize


def test_a_processor_without_its_extra_is_skipped_with_a_one_line_note(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo_jobs, "unavailable", lambda name, s: "install the 'video' extra")
    settings = Settings(data_dir=tmp_path)
    jobs, skipped = demo_jobs.demo_jobs(settings, {"echo", "video_pipeline"}, log=lambda m: None)
    assert [j.processor for j in jobs] == ["echo"] * 3
    assert skipped == ["video_pipeline: install the 'video' extra"]


def test_the_llm_job_reads_the_diarized_transcript_when_there_is_one() -> None:
    params = demo_jobs._llm_params({"diarization": "d1"})
    assert params["from_job"] == "d1" and "transcript" not in params


def test_a_diarization_summary_lists_speakers_and_turns() -> None:
    result = {
        "num_speakers": 2,
        "duration": 9.5,
        "segments": [
            {"start": 0.0, "end": 4.0, "speaker": "SPEAKER_00", "text": "Hello there."},
            {"start": 4.5, "end": 9.0, "speaker": "SPEAKER_01", "text": "Hi."},
        ],
    }
    lines = summarize("diarization", result)
    assert lines[0] == "2 speakers, 2 turns, 9.5 s of audio"
    assert lines[2].endswith("SPEAKER_01: Hi.")


def test_a_video_summary_lists_the_scenes() -> None:
    scenes = [
        {"start_seconds": 0.0, "end_seconds": 2.0},
        {"start_seconds": 2.0, "end_seconds": 4.0},
    ]
    result = {"scenes": scenes, "frames_read": 100, "processing_fps": 900.0}
    assert summarize("video_pipeline", result)[0] == "2 scenes: 0.0-2.0 s, 2.0-4.0 s"


def test_an_llm_summary_shows_a_failed_task_with_what_the_model_wrote() -> None:
    result = {
        "results": {"summary": "They agreed.", "items": None},
        "errors": {"items": {"error": "not valid JSON", "answer": "[", "repaired": "[oops"}},
        "metadata": {"model": "m", "usage": {"total_tokens": 10}, "latency_s": 1.5},
    }
    lines = summarize("llm_analysis", result)
    assert lines[0] == "summary: They agreed."
    assert lines[1] == "items: failed: not valid JSON; the model wrote [oops"


@pytest.mark.integration
@pytest.mark.slow
def test_the_demo_runs_echo_and_the_video_pipeline_and_summarizes_them(zero: Zero) -> None:
    out = zero.cli("demo", "--only", "echo,video_pipeline").stdout
    assert "4 scenes: 0.0-2.0 s, 2.0-4.0 s, 4.0-6.0 s, 6.0-8.0 s" in out
    assert out.count(" succeeded ") == 4 and "demo-bad" in out
