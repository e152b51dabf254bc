"""Change points, segments, speakers per segment and turns, on made-up embeddings: windows
that straddle a change of speaker never become a speaker, and no turn is empty."""

from __future__ import annotations

import numpy as np
import pytest

from processors.audio.clustering import SpeakerHints
from processors.audio.pipeline import label_segments, merge_close, segments_to_turns
from processors.audio.resegment import resegment, viterbi
from processors.audio.segmentation import Segment, change_scores, pick_changes, split_regions

WINDOW, HOP = 1.5, 0.25


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def voices(n: int, seed: int = 0) -> np.ndarray:
    """`n` orthogonal-ish speaker directions in 32 dimensions."""
    return unit(np.random.default_rng(seed).normal(size=(n, 32)))


def windows_over(
    script: list[tuple[float, float, int]], centres: np.ndarray, noise: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Window starts every HOP over [first start, last end], each embedding the mix of the
    voices it covers, weighted by how much of the window each one fills."""
    begin, end = script[0][0], script[-1][1]
    starts = np.arange(begin, end - WINDOW + 1e-9, HOP)
    rng = np.random.default_rng(1)
    out = []
    for s in starts:
        mix = sum(max(0.0, min(b, s + WINDOW) - max(a, s)) * centres[k] for a, b, k in script)
        out.append(mix + rng.normal(scale=noise, size=centres.shape[1]))
    return starts, unit(np.asarray(out))


def segment(start: float, end: float, embedding: np.ndarray, reliable: bool = True) -> Segment:
    return Segment(start, end, unit(embedding), reliable)


def test_change_score_compares_each_window_with_the_one_that_starts_where_it_ends() -> None:
    starts = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    embeddings = unit(np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1]], dtype=float))
    times, scores = change_scores(starts, embeddings, window=1.5)
    assert times.tolist() == [1.5, 2.0]
    assert scores.tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.1, 0.1, 0.1, 0.1, 0.1], []),  # nothing reaches the threshold
        ([0.1, 0.3, 0.6, 0.3, 0.1], [2.0]),  # one peak
        ([0.6, 0.1, 0.1, 0.1, 0.6], [1.0, 3.0]),  # two peaks far apart
        ([0.1, 0.5, 0.6, 0.1, 0.1], [2.0]),  # the lower of two close peaks gives way
    ],
    ids=["none", "one", "two", "too-close"],
)
def test_change_points_are_separated_local_maxima(scores: list[float], expected: list) -> None:
    times = np.array([1.0, 1.5, 2.0, 2.5, 3.0])
    found = pick_changes(times, np.array(scores), (0.0, 4.0), threshold=0.25, min_gap=0.6)
    assert found == expected


def test_no_change_point_sits_near_a_region_edge() -> None:
    times = np.array([0.2, 1.5, 2.0, 2.5, 3.9])
    scores = np.array([0.9, 0.3, 0.5, 0.3, 0.9])
    assert pick_changes(times, scores, (0.0, 4.0), threshold=0.25, min_gap=0.5) == [2.0]


def test_a_region_is_cut_where_the_voice_changes() -> None:
    script = [(0.0, 6.0, 0), (6.0, 12.0, 1)]
    starts, embeddings = windows_over(script, voices(2))
    segments = split_regions([(0.0, 12.0)], starts, embeddings, WINDOW)
    assert len(segments) == 2
    assert segments[0].end == pytest.approx(6.0, abs=HOP)
    assert all(s.reliable for s in segments)


def test_a_turn_shorter_than_a_window_is_an_unreliable_segment() -> None:
    script = [(0.0, 6.0, 0), (6.0, 7.0, 1), (7.0, 13.0, 2)]
    starts, embeddings = windows_over(script, voices(3))
    segments = split_regions([(0.0, 13.0)], starts, embeddings, WINDOW)
    short = [s for s in segments if 5.5 < (s.start + s.end) / 2 < 7.5]
    assert [s.reliable for s in short] == [False]


def test_windows_straddling_changes_never_found_a_speaker() -> None:
    a, b = voices(2)
    segments = []
    for n in range(12):  # A and B alternate; between them, a short mixed piece
        t, own = 4.0 * n, (a if n % 2 == 0 else b)
        segments.append(segment(t, t + 3.0, own))
        segments.append(segment(t + 3.0, t + 4.0, a + b, reliable=False))
    labels = label_segments(segments, SpeakerHints(), threshold=0.3, min_speaker_seconds=1.0)
    assert len(set(labels.tolist())) == 2


def test_a_speaker_with_too_little_speech_is_merged_into_the_nearest() -> None:
    a, b, c = voices(3)
    segments = [segment(4.0 * n, 4.0 * n + 3.0, a if n % 2 else b) for n in range(8)]
    segments.append(segment(40.0, 40.8, c))  # 0.8 s in all: no participant
    labels = label_segments(segments, SpeakerHints(), threshold=0.3, min_speaker_seconds=1.0)
    assert len(set(labels.tolist())) == 2


def test_a_one_sentence_speaker_is_kept_when_the_count_says_so() -> None:
    a, b, c = voices(3)
    segments = [segment(4.0 * n, 4.0 * n + 3.0, a if n % 2 else b) for n in range(8)]
    segments.append(segment(40.0, 40.8, c))
    hints = SpeakerHints(num_speakers=3)
    labels = label_segments(segments, hints, threshold=0.3, min_speaker_seconds=1.0)
    assert len(set(labels.tolist())) == 3
    assert labels[-1] not in labels[:-1]


def test_abutting_segments_of_one_speaker_become_one_turn() -> None:
    e = voices(1)[0]
    segments = [segment(0.0, 1.0, e), segment(1.0, 2.5, e), segment(3.0, 4.0, e)]
    turns = segments_to_turns(segments, np.array([0, 0, 0]))
    assert [(t.start, t.end) for t in turns] == [(0.0, 2.5), (3.0, 4.0)]


@pytest.mark.parametrize(
    "bounds",
    [[(44.54, 44.55)], [(10.0, 10.0)], [(3.0, 3.19)]],
    ids=["ten-ms", "zero-length", "under-0.2s"],
)
def test_no_turn_is_empty_or_shorter_than_a_fifth_of_a_second(bounds: list) -> None:
    e = voices(1)[0]
    segments = [segment(0.0, 2.0, e), *(segment(a, b, e) for a, b in bounds)]
    turns = segments_to_turns(segments, np.zeros(len(segments), dtype=int))
    assert [(t.start, t.end) for t in turns] == [(0.0, 2.0)]


@pytest.mark.parametrize(
    ("scores", "cost", "expected"),
    [
        ([[1, 0]] * 3 + [[0, 1]] * 3, 0.5, [0, 0, 0, 1, 1, 1]),  # a clear change
        ([[1, 0]] * 3 + [[0, 1]] + [[1, 0]] * 3, 1.5, [0] * 7),  # one doubtful frame
        ([[1, 0]] * 3 + [[0, 1]] + [[1, 0]] * 3, 0.3, [0, 0, 0, 1, 0, 0, 0]),  # cheap changes
    ],
    ids=["change", "blip-absorbed", "blip-kept"],
)
def test_viterbi_charges_each_change_of_speaker(scores: list, cost: float, expected: list) -> None:
    assert viterbi(np.array(scores, dtype=float), cost).tolist() == expected


def test_resegmentation_puts_the_boundary_where_the_voice_changes() -> None:
    script = [(0.0, 6.0, 0), (6.0, 12.0, 1)]
    centres = voices(2)
    starts, embeddings = windows_over(script, centres)
    runs = resegment([(0.0, 12.0)], starts, embeddings, WINDOW, centres)
    assert [k for _, _, k in runs] == [0, 1]
    assert runs[0][1] == pytest.approx(6.0, abs=0.1)


@pytest.mark.parametrize(
    ("gap", "expected"),
    [(0.05, [0, 0, 0]), (0.5, [0, 1, 1])],
    ids=["one-voice", "two-voices"],
)
def test_speakers_closer_than_the_distance_are_joined(gap: float, expected: list) -> None:
    a = np.array([1.0, 0.0])
    b = unit(np.array([1.0 - gap, np.sqrt(1 - (1 - gap) ** 2)]))
    segments = [segment(0, 2, a), segment(2, 4, b), segment(4, 6, b)]
    labels = merge_close(segments, np.array([0, 1, 1]), distance=0.15)
    assert labels.tolist() == expected
