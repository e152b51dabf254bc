"""`video_pipeline`'s `prepare`: the video opened and its first frames decoded ahead of
the job, on another thread than the job that is running, and released whatever happens
to the prepared input."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest

from config import Settings
from processors.base import PermanentError
from processors.video.prepared import PreparedVideo
from processors.video.processor import VideoPipelineProcessor
from tests.video.conftest import FRAMES, JobRun, make_context

TIMINGS = {"elapsed_seconds", "processing_fps", "analysis_fps", "stage_seconds"}


def prepare(
    processor: VideoPipelineProcessor, settings: Settings, **params: Any
) -> tuple[PreparedVideo, JobRun]:
    job = JobRun()
    prepared = processor.prepare(processor.Params(**params), make_context(job, settings))
    return prepared, job


def without_timings(result: dict[str, Any] | None) -> dict[str, Any]:
    assert result is not None
    return {key: value for key, value in result.items() if key not in TIMINGS}


def test_a_prepared_video_is_processed_like_an_unprepared_one(
    processor: VideoPipelineProcessor, settings: Settings, default_run: JobRun
) -> None:
    prepared, job = prepare(processor, settings, video_path="clip.mp4")
    job.result = processor.process(prepared, make_context(job, settings))
    assert without_timings(job.result) == without_timings(default_run.result)
    assert job.rows == default_run.rows
    assert [len(batch) for batch in job.batches] == [len(b) for b in default_run.batches]


def test_prepare_opens_the_video_and_decodes_its_first_batch(
    processor: VideoPipelineProcessor, settings: Settings
) -> None:
    prepared, _ = prepare(processor, settings, video_path="clip.mp4")
    with prepared:
        assert prepared.error is None and prepared.reader is not None
        assert prepared.reader.info.width == 320
        assert prepared.first is not None
        assert prepared.first.indices == list(range(settings.video.batch_size))
        assert prepared.first.pixels.shape == (settings.video.batch_size, 108, 192, 3)


def test_the_job_closes_its_prepared_video(
    processor: VideoPipelineProcessor, settings: Settings
) -> None:
    prepared, job = prepare(processor, settings, video_path="short.mkv", max_frames=40)
    processor.process(prepared, make_context(job, settings))
    assert prepared.closed and prepared.reader is not None and prepared.reader.closed


def test_a_prepared_video_never_processed_is_released_by_close(
    processor: VideoPipelineProcessor, settings: Settings
) -> None:
    prepared, _ = prepare(processor, settings, video_path="clip.mp4")
    reader = prepared.reader
    assert reader is not None and not reader.closed
    prepared.close()
    prepared.close()  # a second close is harmless
    assert prepared.closed and reader.closed


def test_a_dropped_prepared_video_is_released_when_collected(
    processor: VideoPipelineProcessor, settings: Settings
) -> None:
    prepared, _ = prepare(processor, settings, video_path="clip.mp4")
    reader = prepared.reader
    assert reader is not None
    del prepared
    gc.collect()
    assert reader.closed


def test_a_video_that_cannot_be_opened_fails_its_job_when_the_job_runs(
    processor: VideoPipelineProcessor, settings: Settings
) -> None:
    prepared, job = prepare(processor, settings, video_path="corrupt.mp4")
    assert isinstance(prepared.error, PermanentError)
    with pytest.raises(PermanentError, match=r"'corrupt\.mp4' is corrupt, truncated"):
        processor.process(prepared, make_context(job, settings))


def test_an_unknown_pipeline_fails_before_the_video_is_opened(
    processor: VideoPipelineProcessor, settings: Settings
) -> None:
    prepared, job = prepare(processor, settings, video_path="corrupt.mp4", pipeline="nope")
    assert prepared.reader is None
    with pytest.raises(PermanentError, match="unknown video pipeline 'nope'"):
        processor.process(prepared, make_context(job, settings))


def test_a_prepared_video_is_processed_only_once(
    processor: VideoPipelineProcessor, settings: Settings
) -> None:
    prepared, job = prepare(processor, settings, video_path="short.mkv", max_frames=8)
    processor.process(prepared, make_context(job, settings))
    with pytest.raises(RuntimeError, match="processed once"):
        processor.process(prepared, make_context(job, settings))


def test_the_job_time_includes_the_preparation(
    processor: VideoPipelineProcessor, settings: Settings
) -> None:
    prepared, job = prepare(processor, settings, video_path="short.mkv")
    result = processor.process(prepared, make_context(job, settings))
    assert prepared.seconds > 0
    assert result["elapsed_seconds"] >= round(prepared.seconds, 4)


def test_a_video_is_prepared_while_another_job_runs_on_the_same_processor(
    processor: VideoPipelineProcessor, settings: Settings, default_run: JobRun
) -> None:
    running = JobRun()
    first_batch_out = threading.Event()

    def run() -> None:
        ctx = make_context(running, settings, stop=lambda: bool(first_batch_out.set()))
        running.result = processor.process(processor.Params(video_path="clip.mp4"), ctx)

    thread = threading.Thread(target=run)
    thread.start()
    first_batch_out.wait(10)
    prepared, job = prepare(processor, settings, video_path="clip.mp4")
    thread.join()
    job.result = processor.process(prepared, make_context(job, settings))
    assert running.result is not None and running.result["frames_read"] == FRAMES
    assert without_timings(job.result) == without_timings(default_run.result)
