"""Resegmentation: once the speakers are known, place every turn boundary from the
windows themselves, at 20 ms resolution.

Rules:
- Each window is scored against every speaker's centroid (cosine similarity).
- Each 20 ms frame of speech takes the weighted mean score of the windows covering it
  (a window counts most at its centre), so a window that straddles two voices pulls a
  little towards both and decides nothing alone.
- Within each speech region, a Viterbi pass picks the speaker sequence with the highest
  total score less `switch_cost` per change of speaker: a change must be backed by
  about `switch_cost` / (score margin) seconds of evidence, so short, doubtful runs are
  given to their neighbours' speaker instead of making stray turns.
- Only speakers that clustering found take part: resegmentation never adds a speaker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FRAME = 0.02
"""Seconds per frame."""
SWITCH_COST = 0.5
"""Score a change of speaker must win back (in cosine-similarity-frames: 0.5 is, say,
0.1 better similarity held for 0.1 s... five frames)."""


def frame_scores(
    starts: np.ndarray, scores: np.ndarray, window: float, n_frames: int
) -> np.ndarray:
    """(frames, speakers): each frame's weighted mean of the scores of the windows covering
    it, NaN where no window does."""
    width = max(1, round(window / FRAME))
    weight = np.hanning(width + 2)[1:-1]
    total = np.zeros((n_frames, scores.shape[1]))
    mass = np.zeros(n_frames)
    for start, row in zip(starts, scores, strict=True):
        first = round(start / FRAME)
        last = min(n_frames, first + width)
        if last <= first:
            continue
        w = weight[: last - first]
        total[first:last] += w[:, None] * row
        mass[first:last] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / mass[:, None]


def viterbi(scores: np.ndarray, switch_cost: float) -> np.ndarray:
    """The speaker index per frame maximising total score less `switch_cost` per change."""
    n, k = scores.shape
    best = scores[0].copy()
    back = np.zeros((n, k), dtype=np.int32)
    for t in range(1, n):
        leader = int(np.argmax(best))
        switch = best[leader] - switch_cost
        stay = best >= switch
        back[t] = np.where(stay, np.arange(k), leader)
        best = np.where(stay, best, switch) + scores[t]
    path = np.empty(n, dtype=np.int32)
    path[-1] = int(np.argmax(best))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def resegment(
    regions: Sequence[tuple[float, float]],
    starts: np.ndarray,
    embeddings: np.ndarray,
    window: float,
    centroids: np.ndarray,
    switch_cost: float = SWITCH_COST,
) -> list[tuple[float, float, int]]:
    """(start, end, speaker index) runs over the speech regions."""
    if not regions or centroids.size == 0 or starts.size == 0:
        return []
    n_frames = int(np.ceil(max(end for _, end in regions) / FRAME)) + 1
    frames = frame_scores(starts, embeddings @ centroids.T, window, n_frames)
    runs: list[tuple[float, float, int]] = []
    for begin, end in regions:
        a, b = round(begin / FRAME), round(end / FRAME)
        piece = frames[a:b]
        if piece.shape[0] == 0:
            continue
        piece = np.where(np.isnan(piece), 0.0, piece)
        path = viterbi(piece, switch_cost)
        change = np.flatnonzero(np.diff(path)) + 1
        for lo, hi in zip(np.r_[0, change], np.r_[change, path.size], strict=True):
            runs.append((max(begin, (a + lo) * FRAME), min(end, (a + hi) * FRAME), int(path[lo])))
    return runs
