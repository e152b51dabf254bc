"""Stages as plugins: resolution, config checks, entry points, and the built-ins' values."""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from config import Settings
from processors.base import ConfigError, PermanentError
from processors.registry import get_processor_class
from processors.video import builtin_stages
from processors.video.processor import VideoPipelineProcessor
from processors.video.stages import (
    ENTRY_POINT_GROUP,
    Frames,
    PipelineError,
    PipelineState,
    Stage,
    StageOutput,
    register_stage,
    resolve_pipeline,
    stages,
)
from tests.video.conftest import JobRun, make_context


@register_stage
class CycleA(Stage):
    name = "test_cycle_a"
    requires = ("test_cycle_b",)

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        return None


@register_stage
class CycleB(Stage):
    name = "test_cycle_b"
    requires = ("test_cycle_a",)

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        return None


@register_stage
class Redness(Stage):
    """Reads `gray` (a dependency) and reports mean red minus mean luma."""

    name = "test_redness"
    requires = ("gray",)

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        red = frames.pixels[:, 0].to(torch.float32).mean(dim=(1, 2))
        return red - state.outputs["gray"].to(torch.float32).mean(dim=(1, 2))


@register_stage
class BatchRecorder(Stage):
    """Records the shape of every batch it is handed."""

    name = "test_batch_recorder"
    store = False
    shapes: ClassVar[list[tuple[int, ...]]] = []

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        BatchRecorder.shapes.append(tuple(frames.pixels.shape))
        return None


def test_pipeline_resolves_dependencies_before_dependents() -> None:
    names = [cls.name for cls in resolve_pipeline(["scene_cuts", "test_redness", "quality"])]
    assert names == ["hsv", "scene_cuts", "gray", "test_redness", "quality"]


def test_pipeline_cycle_is_config_error(make_video_settings: Callable[..., Settings]) -> None:
    settings = make_video_settings(pipelines={"loop": ["motion", "test_cycle_a"]})
    with pytest.raises(ConfigError, match="cycle: test_cycle_a -> test_cycle_b -> test_cycle_a"):
        VideoPipelineProcessor.check_config(settings)


def test_unknown_stage_in_pipeline_is_config_error(
    make_video_settings: Callable[..., Settings],
) -> None:
    settings = make_video_settings(pipelines={"default": ["scene_cuts", "no_such_stage"]})
    with pytest.raises(ConfigError, match=r"'default'.*unknown stage 'no_such_stage'"):
        VideoPipelineProcessor.check_config(settings)


def test_default_settings_pass_config_check(settings: Settings) -> None:
    VideoPipelineProcessor.check_config(settings)


def test_embedding_without_model_file_is_config_error(
    make_video_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="VIDEO_EMBEDDING_MODEL"):
        VideoPipelineProcessor.check_config(make_video_settings(pipelines={"e": ["embedding"]}))
    missing = make_video_settings(
        pipelines={"e": ["embedding"]}, embedding_model=tmp_path / "nope.pt"
    )
    with pytest.raises(ConfigError, match="does not exist"):
        VideoPipelineProcessor.check_config(missing)


def test_invalid_stages_param_is_permanent_error(run_job: Callable[..., JobRun]) -> None:
    with pytest.raises(PermanentError, match="unknown stage 'nope'"):
        run_job(video_path="clip.mp4", stages=["motion", "nope"])
    with pytest.raises(PermanentError, match="cycle"):
        run_job(video_path="clip.mp4", stages=["test_cycle_b"])


def test_unknown_pipeline_name_is_permanent_error(run_job: Callable[..., JobRun]) -> None:
    with pytest.raises(PermanentError, match="unknown video pipeline 'fast'"):
        run_job(video_path="clip.mp4", pipeline="fast")


def test_registry_maps_video_pipeline_to_this_processor() -> None:
    assert get_processor_class("video_pipeline") is VideoPipelineProcessor


def test_dependency_outputs_reach_dependent_stage(run_job: Callable[..., JobRun]) -> None:
    job = run_job(video_path="short.mkv", stages=["test_redness"], max_frames=40)
    assert job.result is not None and job.result["stages"] == ["gray", "test_redness"]
    # Frames 0-39 are a teal-to-blue gradient: less red than luma.
    assert all(row["values"]["test_redness"] < -50 for row in job.rows)
    assert set(job.rows[0]["values"]) == {"test_redness"}  # `gray` is not stored


def test_entry_point_stage_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_job: Callable[..., JobRun]
) -> None:
    (tmp_path / "stoker_demo_stage.py").write_text(
        textwrap.dedent(
            """
            import torch
            from processors.video.stages import Stage

            class FrameNumber(Stage):
                name = "test_frame_number"
                def run(self, frames, state):
                    return torch.tensor(frames.indices) * 10
            """
        )
    )
    dist = tmp_path / "stoker_demo_stage-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: stoker-demo-stage\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntest_frame_number = stoker_demo_stage:FrameNumber\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    stages.rescan()  # entry points are scanned once per registry
    job = run_job(video_path="short.mkv", stages=["test_frame_number"], max_frames=5)
    assert [row["values"]["test_frame_number"] for row in job.rows] == [0, 10, 20, 30, 40]


def test_memory_bounded_by_batch_size(
    make_video_settings: Callable[..., Settings],
) -> None:
    settings = make_video_settings(batch_size=8, analysis_width=160)
    processor = VideoPipelineProcessor(settings)
    processor.load("cpu")
    BatchRecorder.shapes.clear()
    job = JobRun()
    params = processor.Params(video_path="big.mp4", stages=["test_batch_recorder"])
    job.result = processor.process(params, make_context(job, settings))
    # 12 frames of 1280x720 arrive as batches of at most 8 frames at the analysis size.
    assert BatchRecorder.shapes == [(8, 3, 90, 160), (4, 3, 90, 160)]


def test_motion_is_zero_on_still_frames_and_positive_on_moving(default_run: JobRun) -> None:
    motion = {row["frame_index"]: row["values"]["motion"] for row in default_run.rows}
    assert max(motion[i] for i in range(1, 40)) < 1e-4
    assert min(motion[i] for i in range(81, 140)) > 1e-3
    assert motion[0] == 0.0


def test_quality_measures_brightness_contrast_and_sharpness(default_run: JobRun) -> None:
    quality = {row["frame_index"]: row["values"]["quality"] for row in default_run.rows}
    gradient, noise, orange = quality[10], quality[60], quality[250]
    assert orange["brightness"] > gradient["brightness"]
    assert noise["contrast"] > 3 * gradient["contrast"]
    assert noise["sharpness"] > 100 * max(gradient["sharpness"], 1e-3)
    assert set(gradient) == {"brightness", "contrast", "sharpness"}


class TinyEmbedder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.head = torch.nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture
def embedding_run(make_video_settings: Callable[..., Settings], tmp_path: Path) -> JobRun:
    torch.manual_seed(0)
    model_path = tmp_path / "embedder.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what we test
        torch.jit.save(torch.jit.script(TinyEmbedder().eval()), str(model_path))
    settings = make_video_settings(
        pipelines={"default": ["scene_cuts"], "embed": ["embedding"]},
        embedding_model=model_path,
        embedding_input_size=32,
    )
    VideoPipelineProcessor.check_config(settings)
    processor = VideoPipelineProcessor(settings)
    processor.load("cpu")
    job = JobRun()
    params = processor.Params(video_path="short.mkv", pipeline="embed")
    job.result = processor.process(params, make_context(job, settings))
    return job


def test_embedding_stage_stores_torchscript_vectors(embedding_run: JobRun) -> None:
    vectors = [row["values"]["embedding"] for row in embedding_run.rows]
    assert len(vectors) == 100
    assert all(len(v) == 16 for v in vectors)
    assert all(abs(sum(x * x for x in v) - 1.0) < 1e-4 for v in vectors)


def test_embedding_vectors_follow_the_picture(embedding_run: JobRun) -> None:
    v = [torch.tensor(row["values"]["embedding"]) for row in embedding_run.rows]
    same_scene = float(v[5] @ v[30])
    other_scene = float(v[5] @ v[60])
    assert same_scene > 0.999
    assert other_scene < same_scene - 1e-3


def test_stage_returning_wrong_length_is_reported(run_job: Callable[..., JobRun]) -> None:
    @register_stage
    class Short(Stage):
        name = "test_short_output"

        def run(self, frames: Frames, state: PipelineState) -> Any:
            return [1.0]

    with pytest.raises(PermanentError, match="1 values for 5 frames"):
        run_job(video_path="short.mkv", stages=["test_short_output"], max_frames=5)
    assert issubclass(PipelineError, ValueError)


def test_embedding_stage_loads_torch_export_files(
    make_video_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    model_path = tmp_path / "embedder.pt2"
    batch = torch.export.Dim("batch", min=1, max=1024)
    exported = torch.export.export(
        TinyEmbedder().eval(), (torch.rand(2, 3, 32, 32),), dynamic_shapes={"x": {0: batch}}
    )
    torch.export.save(exported, str(model_path))
    settings = make_video_settings(
        pipelines={"embed": ["embedding"]}, embedding_model=model_path, embedding_input_size=32
    )
    processor = VideoPipelineProcessor(settings)
    processor.load("cpu")
    job = JobRun()
    params = processor.Params(video_path="short.mkv", pipeline="embed", max_frames=40)
    job.result = processor.process(params, make_context(job, settings))
    assert [len(batch) for batch in job.batches] == [32, 8]
    assert all(len(row["values"]["embedding"]) == 16 for row in job.rows)


def test_motion_and_quality_agree_with_and_without_opencv(
    run_job: Callable[..., JobRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = {"video_path": "short.mkv", "stages": ["motion", "quality"], "max_frames": 90}
    with_cv2 = run_job(**params).rows
    monkeypatch.setattr(builtin_stages, "cv2", None)
    torch_only = run_job(**params).rows
    for a, b in zip(with_cv2, torch_only, strict=True):
        assert a["values"]["motion"] == pytest.approx(b["values"]["motion"], rel=0.05, abs=1e-4)
        for key, value in a["values"]["quality"].items():
            assert value == pytest.approx(b["values"]["quality"][key], rel=0.02, abs=0.5)


def test_unreadable_embedding_model_is_config_error_at_load(
    make_video_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    model_path = tmp_path / "garbage.pt"
    model_path.write_bytes(b"not a model")
    settings = make_video_settings(pipelines={"e": ["embedding"]}, embedding_model=model_path)
    with pytest.raises(ConfigError, match=r"'e'.*garbage\.pt"):
        VideoPipelineProcessor(settings).load("cpu")
