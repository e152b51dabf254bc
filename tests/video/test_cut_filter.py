"""The cut filter keeps PySceneDetect's MERGE-mode decisions."""

from __future__ import annotations

import pytest

from processors.video.cut_filter import cuts_of


def flags(above: set[int], frames: int) -> list[tuple[int, bool]]:
    return [(i, i in above) for i in range(1, frames)]


@pytest.mark.parametrize(
    ("above", "min_len", "expected"),
    [
        ({30, 60}, 15, [30, 60]),  # far apart: each a cut at once
        ({5, 40}, 15, [40]),  # too close to the start: dropped
        ({30, 35}, 15, [30]),  # a flash right after a cut, then calm: no second cut
        ({30, *range(50, 80)}, 15, [30, 50, 79]),  # a changing run: its start, then its end
        ({30, 60}, 0, [30, 60]),  # no minimum length: every frame above is a cut
    ],
)
def test_cuts_follow_pyscenedetects_merge_mode(
    above: set[int], min_len: int, expected: list[int]
) -> None:
    assert cuts_of(flags(above, 120), min_len) == expected


def test_the_filter_agrees_with_pyscenedetects_own() -> None:
    detector = pytest.importorskip("scenedetect.detector")
    from scenedetect import FrameTimecode

    above = {20, 30, 33, 50, 52, 54, 56, 58, 60, 62, 64, 66, 68, 70, 90, 140, 141, 170}
    theirs = detector.FlashFilter(detector.FlashFilter.Mode.MERGE, 15)
    got = [
        cut.frame_num
        for i in range(1, 200)
        for cut in theirs.filter(FrameTimecode(i, fps=30.0), i in above)
    ]
    assert cuts_of(flags(above, 200), 15) == got
