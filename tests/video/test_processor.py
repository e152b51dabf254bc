"""The video_pipeline processor: inputs, errors, emitted rows, progress and summary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from config import Settings
from processors.base import PermanentError, StopRequested
from processors.video.processor import VideoPipelineProcessor, run_on_file
from tests.video.conftest import CUTS, FPS, FRAMES, SHORT_FRAMES, JobRun, make_context


def test_result_summarises_frames_fps_scenes_and_stage_timings(default_run: JobRun) -> None:
    result = default_run.result
    assert result is not None
    assert result["frames_read"] == result["frames_analysed"] == FRAMES
    assert result["processing_fps"] > 0 and result["complete"] is True
    assert result["damage"] is None
    assert result["pipeline"] == "default"
    assert result["stages"] == ["hsv", "scene_cuts", "gray", "motion", "quality"]
    assert set(result["stage_seconds"]) == {"decode", *result["stages"]}
    assert result["video"] == {
        "path": "clip.mp4",
        "width": 320,
        "height": 180,
        "fps": FPS,
        "duration": pytest.approx(FRAMES / FPS, abs=0.05),
        "codec": "h264",
    }
    assert result["analysis_size"] == [192, 108]
    assert len(result["scenes"]) == len(CUTS) + 1


def test_frame_rows_emitted_in_batches(default_run: JobRun) -> None:
    assert set(default_run.kinds) == {"frame_results"}
    assert [len(batch) for batch in default_run.batches] == [32] * 8 + [14]
    assert [row["frame_index"] for row in default_run.rows] == list(range(FRAMES))
    row = default_run.rows[100]
    assert row["timestamp"] == pytest.approx(100 / FPS)
    assert set(row["values"]) == {"scene_cuts", "motion", "quality"}


def test_progress_reported_by_frames_processed(default_run: JobRun) -> None:
    fractions = [fraction for fraction, _ in default_run.progress]
    assert fractions[0] == pytest.approx(32 / FRAMES, abs=0.01)
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_frame_stride_and_max_frames_limit_what_is_analysed(
    run_job: Callable[..., JobRun],
) -> None:
    job = run_job(video_path="clip.mp4", frame_stride=2, max_frames=50)
    assert [row["frame_index"] for row in job.rows] == list(range(0, 100, 2))
    assert job.result is not None
    assert (job.result["frames_analysed"], job.result["frames_read"]) == (50, 99)
    assert job.result["complete"] is True


def test_start_and_end_seconds_bound_the_frames(run_job: Callable[..., JobRun]) -> None:
    job = run_job(video_path="clip.mp4", stages=["scene_cuts"], start=2.0, end=6.0)
    indices = [row["frame_index"] for row in job.rows]
    assert indices == list(range(50, 150))
    assert job.rows[0]["timestamp"] == pytest.approx(2.0)
    assert job.cuts == [80, 140]


def test_resize_param_sets_the_analysis_size(run_job: Callable[..., JobRun]) -> None:
    by_width = run_job(video_path="short.mkv", stages=["motion"], max_frames=2, resize=96)
    exact = run_job(video_path="short.mkv", stages=["motion"], max_frames=2, resize=(64, 48))
    native = run_job(video_path="short.mkv", stages=["motion"], max_frames=2, resize=0)
    assert by_width.result is not None and exact.result is not None and native.result is not None
    assert by_width.result["analysis_size"] == [96, 54]
    assert exact.result["analysis_size"] == [64, 48]
    assert native.result["analysis_size"] == [320, 180]


@pytest.mark.parametrize("name", ["short.mov", "short.mkv", "short.webm"])
def test_mov_mkv_and_webm_decode_with_the_same_cuts(
    run_job: Callable[..., JobRun], name: str
) -> None:
    job = run_job(video_path=name, stages=["scene_cuts"])
    assert job.result is not None and job.result["frames_read"] == SHORT_FRAMES
    assert job.cuts == [40, 80]
    assert job.result["complete"] is True


def test_missing_file_is_permanent_error(run_job: Callable[..., JobRun]) -> None:
    with pytest.raises(PermanentError, match="does not exist"):
        run_job(video_path="uploads/none.mp4")


def test_path_outside_media_root_is_permanent_error(
    run_job: Callable[..., JobRun], tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(b"x")
    with pytest.raises(PermanentError, match="outside the media root"):
        run_job(video_path=str(outside))
    with pytest.raises(PermanentError, match="outside the media root"):
        run_job(video_path="../elsewhere.mp4")


def test_corrupt_file_is_permanent_error(run_job: Callable[..., JobRun]) -> None:
    with pytest.raises(
        PermanentError, match=r"'corrupt\.mp4' is corrupt, truncated or not a video"
    ):
        run_job(video_path="corrupt.mp4")


def test_audio_only_file_is_permanent_error(run_job: Callable[..., JobRun]) -> None:
    with pytest.raises(PermanentError, match=r"'audio_only.mp4' has no video stream \(audio"):
        run_job(video_path="audio_only.mp4")


def test_unsupported_extension_is_permanent_error(run_job: Callable[..., JobRun]) -> None:
    with pytest.raises(PermanentError, match="unsupported extension"):
        run_job(video_path="clip.avi")


def test_truncated_file_without_its_index_is_permanent_error(
    run_job: Callable[..., JobRun],
) -> None:
    with pytest.raises(PermanentError, match=r"'truncated\.mp4' is corrupt, truncated"):
        run_job(video_path="truncated.mp4")


@pytest.mark.parametrize("name", ["truncated.mkv", "truncated_faststart.mp4"])
def test_truncated_file_keeps_frames_before_damage(
    run_job: Callable[..., JobRun], name: str
) -> None:
    job = run_job(video_path=name, stages=["scene_cuts"])
    result = job.result
    assert result is not None
    assert result["complete"] is False
    assert "truncated" in result["damage"]
    kept = [row["frame_index"] for row in job.rows]
    assert 20 < len(kept) < FRAMES - 20
    assert kept == list(range(len(kept)))
    assert result["frames_read"] == len(kept)
    assert job.cuts == [c for c in CUTS if c < len(kept)]


def test_stop_request_stops_between_batches(
    processor: VideoPipelineProcessor, settings: Settings
) -> None:
    job = JobRun()
    ctx = make_context(job, settings, stop=lambda: len(job.batches) >= 2)
    with pytest.raises(StopRequested):
        processor.process(processor.Params(video_path="clip.mp4"), ctx)
    assert len(job.batches) == 2


def test_params_reject_pipeline_and_stages_together() -> None:
    with pytest.raises(ValueError, match="either `pipeline` or `stages`"):
        VideoPipelineProcessor.Params(video_path="a.mp4", pipeline="default", stages=["motion"])
    with pytest.raises(ValueError, match="extra"):
        VideoPipelineProcessor.Params(video_path="a.mp4", colour="red")


def test_issue_example_params_run(run_job: Callable[..., JobRun]) -> None:
    job = run_job(video_path="clip.mp4", pipeline="default", frame_stride=2, max_frames=5000)
    assert job.result is not None
    assert job.result["frames_read"] == FRAMES and job.result["frames_analysed"] == FRAMES // 2
    assert job.cuts == CUTS


def test_run_on_file_returns_the_job_result(settings: Settings) -> None:
    batches: list[int] = []
    result = run_on_file(
        "short.mkv",
        "default",
        1,
        64,
        settings=settings,
        device="cpu",
        on_rows=lambda rows: batches.append(len(rows)),
    )
    assert result["frames_analysed"] == 64 and batches == [32, 32]
    assert [s["start_frame"] for s in result["scenes"]] == [0, 40]
