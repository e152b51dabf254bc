"""Scene-cut quality on generated clips with known cuts, and the stage's score maths."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from config import Settings
from processors.video import builtin_stages
from processors.video.builtin_stages import _rgb_to_hsv_torch, content_scores, rgb_to_hsv
from processors.video.processor import VideoPipelineProcessor
from tests.video.conftest import CUTS, FADE, FPS, FRAMES, MOVING, JobRun, make_context


def f1(found: list[int], truth: list[int]) -> float:
    """F1 of frame-exact matches."""
    hits = len(set(found) & set(truth))
    if not found or not truth or not hits:
        return 0.0
    precision, recall = hits / len(found), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


def test_hard_cuts_found_frame_exact(default_run: JobRun) -> None:
    assert default_run.cuts == CUTS
    assert f1(default_run.cuts, CUTS) == 1.0


def test_no_cut_inside_fade(default_run: JobRun) -> None:
    assert not [c for c in default_run.cuts if FADE.start <= c <= FADE.stop]


def test_no_cut_inside_moving_shape_scene(default_run: JobRun) -> None:
    moving = [row for row in default_run.rows if row["frame_index"] in MOVING[1:]]
    assert len(moving) == len(MOVING) - 1
    assert not [row for row in moving if row["values"]["scene_cuts"]["cut"]]
    assert all(row["values"]["motion"] > 0 for row in moving)


def test_scenes_span_the_clip_in_frames_and_seconds(default_run: JobRun) -> None:
    assert default_run.result is not None
    scenes = default_run.result["scenes"]
    bounds = [0, *CUTS, FRAMES]
    assert [(s["start_frame"], s["end_frame"]) for s in scenes] == list(itertools.pairwise(bounds))
    for scene in scenes:
        assert scene["start_seconds"] == pytest.approx(scene["start_frame"] / FPS, abs=1e-3)
        assert scene["end_seconds"] == pytest.approx(scene["end_frame"] / FPS, abs=1e-3)


def test_cut_rows_carry_score_above_threshold(default_run: JobRun) -> None:
    by_frame = {row["frame_index"]: row["values"]["scene_cuts"] for row in default_run.rows}
    assert all(by_frame[c]["cut"] and by_frame[c]["score"] >= 27.0 for c in CUTS)
    assert sum(v["cut"] for v in by_frame.values()) == len(CUTS)


def test_min_scene_len_suppresses_cuts_too_close_to_the_last_change(
    make_video_settings: Callable[..., Settings], media_root: Path
) -> None:
    settings = make_video_settings(min_scene_len=50)
    processor = VideoPipelineProcessor(settings)
    processor.load("cpu")
    job = JobRun()
    job.result = processor.process(
        processor.Params(video_path="clip.mp4", stages=["scene_cuts"]), make_context(job, settings)
    )
    # 40 is within 50 frames of the start, 80 within 50 of 40 (both dropped before the
    # first cut, as PySceneDetect drops them); 140 and 230 are >= 50 after the last change.
    assert job.cuts == [140, 230]
    scenedetect = pytest.importorskip("scenedetect")
    scenes = scenedetect.detect(
        str(media_root / "clip.mp4"), scenedetect.ContentDetector(min_scene_len=50)
    )
    assert [start.frame_num for start, _ in scenes[1:]] == job.cuts


def test_frame_stride_finds_cuts_at_the_next_analysed_frame(run_job: Callable[..., JobRun]) -> None:
    job = run_job(video_path="clip.mp4", stages=["scene_cuts"], frame_stride=3)
    assert job.cuts == [(c + 2) // 3 * 3 for c in CUTS]


def test_cuts_agree_with_pyscenedetect_on_the_same_clip(media_root: Path) -> None:
    scenedetect = pytest.importorskip("scenedetect")
    scenes = scenedetect.detect(str(media_root / "clip.mp4"), scenedetect.ContentDetector())
    assert [start.frame_num for start, _ in scenes[1:]] == CUTS


def test_a_cut_from_flat_red_to_a_test_pattern_scores_over_the_threshold() -> None:
    # The clip: hue 0 against a pattern of every hue. On the hue circle this
    # scored 18.7 (< 27, missed); PySceneDetect's plain |dH| scores it 27.8.
    red = torch.zeros(1, 3, 36, 64, dtype=torch.uint8)
    red[:, 0] = 255
    pattern = torch.zeros(1, 3, 36, 64, dtype=torch.uint8)
    bars = torch.tensor([[255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [0, 0, 255]])
    for i, rgb in enumerate(bars):
        pattern[0, :, :, i * 13 : (i + 1) * 13] = rgb.view(3, 1, 1)
    score = float(content_scores(rgb_to_hsv(pattern), rgb_to_hsv(red))[0])
    assert score >= 27.0


def test_hue_is_compared_plainly_as_pyscenedetect_does() -> None:
    # Two reds either side of hue 0 (OpenCV hue 179 and 1): 178 apart, as ContentDetector
    # counts them.
    a = torch.tensor([200, 20, 24], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    b = torch.tensor([200, 24, 20], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    hsv_a, hsv_b = rgb_to_hsv(a.contiguous()), rgb_to_hsv(b.contiguous())
    assert {int(hsv_a[0, 0, 0, 0]), int(hsv_b[0, 0, 0, 0])} == {179, 1}
    assert float(content_scores(hsv_b, hsv_a)[0]) == pytest.approx(178 / 3, abs=0.5)


def test_torch_hsv_matches_opencv_scale() -> None:
    cv2 = pytest.importorskip("cv2")
    rgb = torch.randint(
        0, 256, (4, 64, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    ours = _rgb_to_hsv_torch(rgb.permute(0, 3, 1, 2)).to(torch.int16)
    theirs = torch.from_numpy(cv2.cvtColor(rgb.reshape(-1, 48, 3).numpy(), cv2.COLOR_RGB2HSV))
    delta = (ours - theirs.reshape(4, 64, 48, 3).to(torch.int16)).abs()
    hue = delta[..., 0]
    hue = torch.minimum(hue, 180 - hue)
    assert int(hue.max()) <= 1 and int(delta[..., 1:].max()) <= 1


def test_torch_path_finds_the_same_cuts(
    run_job: Callable[..., JobRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The torch code is what runs on GPU; on CPU it is used when OpenCV is absent.
    monkeypatch.setattr(builtin_stages, "cv2", None)
    job = run_job(video_path="clip.mp4", stages=["scene_cuts"])
    assert job.cuts == CUTS


def test_torch_and_opencv_scores_agree() -> None:
    pytest.importorskip("cv2")
    gen = torch.Generator().manual_seed(5)
    hsv = torch.randint(0, 180, (6, 20, 30, 3), dtype=torch.uint8, generator=gen)
    previous = torch.randint(0, 180, (1, 20, 30, 3), dtype=torch.uint8, generator=gen)
    with_cv2 = content_scores(hsv, previous)
    cv2 = builtin_stages.cv2
    try:
        builtin_stages.cv2 = None
        without = content_scores(hsv, previous)
    finally:
        builtin_stages.cv2 = cv2
    assert torch.allclose(with_cv2, without)
