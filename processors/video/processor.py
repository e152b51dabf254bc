"""`video_pipeline`: decode a video, run a pipeline of per-frame stages in batches on
the processor's device, emit per-frame rows and return a summary with the scenes."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, model_validator

from config import Settings, VideoSettings, get_settings
from processors.base import (
    ConfigError,
    Context,
    Params,
    PermanentError,
    Processor,
    TransientError,
)
from processors.registry import register
from processors.video.decode import DecodedBatch, Prefetcher, VideoReader
from processors.video.prepared import PreparedVideo
from processors.video.stages import (
    Frames,
    PipelineError,
    PipelineState,
    Stage,
    StageOutput,
    check_pipeline,
)

FRAME_RESULTS = "frame_results"
DEFAULT_PIPELINE = "default"


class VideoPipelineParams(Params):
    """A `video_pipeline` job's parameters."""

    video_path: str
    """The video file, relative to the media root (or absolute inside it)."""
    pipeline: str | None = None
    """A pipeline named in VIDEO_PIPELINES (default: "default")."""
    stages: list[str] | None = Field(default=None, min_length=1)
    """An explicit list of stages, instead of `pipeline`."""
    frame_stride: int = Field(default=1, ge=1)
    """Analyse every N-th frame."""
    max_frames: int | None = Field(default=None, ge=1)
    """Analyse at most this many frames."""
    start: float | None = Field(default=None, ge=0)
    """Seconds into the video to start at."""
    end: float | None = Field(default=None, gt=0)
    """Seconds into the video to stop at (exclusive)."""
    resize: int | tuple[int, int] | None = None
    """Analysis size: a width (aspect kept), [width, height], or 0 for native size;
    default VIDEO_ANALYSIS_WIDTH."""

    @model_validator(mode="after")
    def _consistent(self) -> VideoPipelineParams:
        if self.pipeline is not None and self.stages is not None:
            raise ValueError("give either `pipeline` or `stages`, not both")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("`end` must be after `start`")
        if isinstance(self.resize, int) and self.resize < 0:
            raise ValueError("`resize` must not be negative")
        if isinstance(self.resize, tuple) and min(self.resize) < 2:
            raise ValueError("`resize` [width, height] must be at least 2 each")
        return self


def per_frame(output: StageOutput, count: int) -> list[Any]:
    """A stage's batch output as `count` JSON-able values (one per frame)."""
    if output is None:
        return [None] * count
    if isinstance(output, torch.Tensor):
        values = output.detach().cpu().tolist()
    elif isinstance(output, dict):
        columns = {key: per_frame(value, count) for key, value in output.items()}
        values = [{key: column[i] for key, column in columns.items()} for i in range(count)]
    else:
        values = list(output)
    if len(values) != count:
        raise PermanentError(f"a stage returned {len(values)} values for {count} frames")
    return values


def build_scenes(
    cuts: list[dict[str, Any]], first: tuple[int, float], end: tuple[int, float]
) -> list[dict[str, Any]]:
    """Scenes from cut frames: each runs from its start frame to the next one's
    (`end_frame` and `end_seconds` exclusive)."""
    bounds = [first, *[(c["frame"], c["seconds"]) for c in cuts], end]
    return [
        {
            "index": i,
            "start_frame": start[0],
            "end_frame": stop[0],
            "start_seconds": round(start[1], 6),
            "end_seconds": round(stop[1], 6),
        }
        for i, (start, stop) in enumerate(itertools.pairwise(bounds))
    ]


@register
class VideoPipelineProcessor(Processor):
    """Runs a pipeline of per-frame stages over a video file (see docs/video.md)."""

    name = "video_pipeline"
    Params = VideoPipelineParams

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._stages: dict[str, Stage] = {}
        self._torch_device = torch.device("cpu")

    @property
    def video_settings(self) -> VideoSettings:
        return self.settings.video

    @classmethod
    def check_config(cls, settings: Settings) -> None:
        """Every configured pipeline must resolve (known stages, no cycle) and its
        stages accept the settings; else ConfigError."""
        if not settings.video.pipelines:
            raise ConfigError("VIDEO_PIPELINES names no pipeline")
        for name, stages in settings.video.pipelines.items():
            try:
                check_pipeline(stages, settings.video)
            except PipelineError as exc:
                raise ConfigError(f"video pipeline {name!r}: {exc}") from exc

    def load(self, device: str) -> None:
        """Create and load the stages of every configured pipeline (models stay resident)."""
        super().load(device)
        self._torch_device = torch.device(device)
        self.check_config(self.settings)
        for name, stages in self.video_settings.pipelines.items():
            try:
                for cls in check_pipeline(stages, self.video_settings):
                    self._stage(cls)
            except PipelineError as exc:
                raise ConfigError(f"video pipeline {name!r}: {exc}") from exc

    def _stage(self, cls: type[Stage]) -> Stage:
        stage = self._stages.get(cls.name)
        if stage is None or type(stage) is not cls:
            stage = cls(self.video_settings)
            stage.load(self._torch_device)
            self._stages[cls.name] = stage
        return stage

    def _pipeline(self, params: VideoPipelineParams) -> tuple[str | None, list[Stage]]:
        name, classes = self._pipeline_classes(params)
        try:
            return name, [self._stage(cls) for cls in classes]
        except PipelineError as exc:  # a stage's model failed to load
            raise PermanentError(f"video pipeline {name or params.stages!r}: {exc}") from exc

    def _pipeline_classes(
        self, params: VideoPipelineParams
    ) -> tuple[str | None, list[type[Stage]]]:
        """The job's pipeline name and stage classes, checked; loads nothing."""
        if params.stages is not None:
            try:
                classes = check_pipeline(params.stages, self.video_settings)
            except PipelineError as exc:
                raise PermanentError(f"invalid `stages`: {exc}") from exc
            name = None
        else:
            name = params.pipeline or DEFAULT_PIPELINE
            if name not in self.video_settings.pipelines:
                known = ", ".join(sorted(self.video_settings.pipelines))
                raise PermanentError(f"unknown video pipeline {name!r}; configured: {known}")
            try:
                classes = check_pipeline(self.video_settings.pipelines[name], self.video_settings)
            except PipelineError as exc:  # only if settings changed after startup
                raise PermanentError(f"video pipeline {name!r}: {exc}") from exc
        return name, classes

    def prepare(self, params: VideoPipelineParams, ctx: Context) -> PreparedVideo:
        """Check the pipeline, open and probe the video and decode its first batch of
        frames, on the CPU (the stages and the device are left alone). A video that cannot
        be opened is kept as the job's error, raised when the job runs."""
        return PreparedVideo.open(params, ctx, self.video_settings, self._pipeline_classes)

    def process(self, params: VideoPipelineParams | PreparedVideo, ctx: Context) -> dict[str, Any]:
        prepared = params if isinstance(params, PreparedVideo) else self.prepare(params, ctx)
        try:
            reader, batches = prepared.take()
            # The job's time includes what `prepare` spent opening and decoding ahead.
            started = time.perf_counter() - prepared.seconds
            pipeline_name, stages = self._pipeline(prepared.params)
            return self._run(prepared.params, ctx, reader, batches, pipeline_name, stages, started)
        except torch.cuda.OutOfMemoryError as exc:
            raise TransientError(f"out of GPU memory (lower VIDEO_BATCH_SIZE?): {exc}") from exc
        finally:
            prepared.close()

    def _analyse(
        self,
        batch: DecodedBatch,
        stages: list[Stage],
        state: PipelineState,
        timings: dict[str, float],
        ctx: Context,
    ) -> None:
        """Run every stage over one batch of frames on the device; emit the frames' rows."""
        device = self._torch_device
        cuda = device.type == "cuda"
        tensor = torch.from_numpy(batch.pixels)
        if cuda:
            tensor = tensor.pin_memory()
        pixels = tensor.to(device, non_blocking=True).permute(0, 3, 1, 2)
        frames = Frames(pixels, batch.indices, batch.timestamps)
        state.outputs = {}
        values: dict[str, list[Any]] = {}
        for stage in stages:
            tick = time.perf_counter()
            output = stage.run(frames, state)
            state.outputs[stage.name] = output
            if stage.store:
                values[stage.name] = per_frame(output, len(frames))
            if cuda:
                torch.cuda.synchronize(device)
            timings[stage.name] += time.perf_counter() - tick
        ctx.emit(
            FRAME_RESULTS,
            [
                {
                    "frame_index": index,
                    "timestamp": stamp,
                    "values": {name: column[i] for name, column in values.items()},
                }
                for i, (index, stamp) in enumerate(
                    zip(batch.indices, batch.timestamps, strict=True)
                )
            ],
        )

    def _run(
        self,
        params: VideoPipelineParams,
        ctx: Context,
        reader: VideoReader,
        decoded: Iterator[DecodedBatch],
        pipeline_name: str | None,
        stages: list[Stage],
        started: float,
    ) -> dict[str, Any]:
        info = reader.info
        state = PipelineState(
            device=self._torch_device,
            settings=self.video_settings,
            video=info,
            frame_stride=params.frame_stride,
        )
        timings = {stage.name: 0.0 for stage in stages}
        expected = reader.expected_frames()
        first: tuple[int, float] | None = None
        ctx.log.info(
            "video_pipeline.start",
            path=params.video_path,
            stages=[s.name for s in stages],
            size=f"{info.width}x{info.height}",
            analysis_size="x".join(map(str, reader.size)),
            fps=round(info.fps, 3),
        )
        with torch.inference_mode(), Prefetcher(decoded) as batches:
            for batch in batches:
                ctx.check_stop()
                if first is None:
                    first = (batch.indices[0], batch.timestamps[0])
                self._analyse(batch, stages, state, timings, ctx)
                if expected:
                    ctx.progress(batch.frames_read / expected, "analysing")
        report = reader.report
        if first is None or report.last_index is None:
            problem = report.damage or "no frame in the requested range"
            raise PermanentError(f"video {params.video_path!r}: no frame decoded ({problem})")
        elapsed = time.perf_counter() - started
        summaries = {stage.name: stage.finish(state) for stage in stages}
        end = (report.last_index + 1, report.last_timestamp + 1 / info.fps)
        cut_summary = summaries.get("scene_cuts")
        scenes = build_scenes(cut_summary["cuts"], first, end) if cut_summary else None
        ctx.progress(1.0, "done")
        if report.damage:
            ctx.log.warning("video_pipeline.damaged", path=params.video_path, damage=report.damage)
        result: dict[str, Any] = {
            "video": {
                "path": params.video_path,
                "width": info.width,
                "height": info.height,
                "fps": round(info.fps, 6),
                "duration": info.duration,
                "codec": info.codec,
            },
            "pipeline": pipeline_name,
            "stages": [stage.name for stage in stages],
            "analysis_size": list(reader.size),
            "frame_stride": params.frame_stride,
            "frames_read": report.frames_read,
            "frames_analysed": report.frames_selected,
            "first_frame": first[0],
            "last_frame": report.last_index,
            "elapsed_seconds": round(elapsed, 4),
            "processing_fps": round(report.frames_read / elapsed, 2),
            "analysis_fps": round(report.frames_selected / elapsed, 2),
            "stage_seconds": {
                "decode": round(report.decode_seconds, 4),
                **{name: round(seconds, 4) for name, seconds in timings.items()},
            },
            "scenes": scenes,
            "stage_summaries": {k: v for k, v in summaries.items() if v is not None},
            "complete": report.damage is None,
            "damage": report.damage,
        }
        ctx.log.info(
            "video_pipeline.done",
            frames=report.frames_read,
            fps=result["processing_fps"],
            scenes=len(scenes) if scenes is not None else None,
        )
        return result


def run_on_file(
    mp4_path: str | Path,
    pipeline_id: str = DEFAULT_PIPELINE,
    frame_stride: int = 1,
    max_frames: int | None = None,
    *,
    settings: Settings | None = None,
    device: str | None = None,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """The in-process form of a `video_pipeline` job, for callers of the old
    `run_on_file` service: same checks (the path must be inside the media root),
    same result. `on_rows` receives each batch of frame rows."""
    import structlog

    from processors.base import resolve_device

    settings = settings or get_settings()
    processor = VideoPipelineProcessor(settings)
    VideoPipelineProcessor.check_config(settings)
    resolved = resolve_device(device or settings.device)
    processor.load(resolved)

    def emit(kind: str, rows: list[dict[str, Any]]) -> None:
        if on_rows is not None and kind == FRAME_RESULTS:
            on_rows(rows)

    params = VideoPipelineParams(
        video_path=str(mp4_path),
        pipeline=pipeline_id,
        frame_stride=frame_stride,
        max_frames=max_frames,
    )
    ctx = Context(
        job_id=f"run_on_file-{uuid.uuid4().hex[:12]}",
        device=resolved,
        log=structlog.get_logger("video_pipeline"),
        settings=settings,
        _emit=emit,
    )
    try:
        return processor.process(params, ctx)
    finally:
        processor.close()
