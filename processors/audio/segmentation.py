"""Speaker change points, and the speaker-homogeneous segments between them.

Rules:
- Embeddings are first centred on the recording: half of their mean (what every voice of
  this recording and its channel share) is taken away and they are normalised again.
  This spreads voices that the embedding model places close together.
- The change score at time t is the cosine distance between the embedding of the window
  that ends at t and the one that starts at t (windows `hop` apart, so t runs over a
  `hop` grid inside each speech region).
- A change point is a local maximum of the score at or above `threshold`, at least
  `min_gap` seconds from the next change point and from the region's edges. Finding too
  many is cheap (clustering joins the pieces again); missing one mixes two voices.
- Each region is cut at its change points into segments. A segment's embedding is the
  mean of the windows lying wholly inside it; a segment shorter than a window has none
  of its own and borrows the mean of the windows whose centres fall in it: it is marked
  unreliable, because those windows reach into its neighbours (the windows that straddle
  a change of speaker are exactly these).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CHANGE_THRESHOLD = 0.3
"""Cosine distance between abutting (centred) windows at which a change of speaker is
considered."""
CENTRING = 0.5
"""Share of the recording's mean embedding taken away from every embedding."""
MIN_GAP = 0.5
"""Seconds between two change points, and between a change point and a region edge."""


@dataclass(frozen=True)
class Segment:
    """A stretch of one speech region believed to hold one voice."""

    start: float
    end: float
    embedding: np.ndarray
    reliable: bool
    """True when at least one window lies wholly inside it."""

    @property
    def duration(self) -> float:
        return self.end - self.start


def centre(embeddings: np.ndarray, share: float = CENTRING) -> np.ndarray:
    """Embeddings less `share` of their mean, normalised again."""
    if embeddings.shape[0] == 0:
        return embeddings
    x = embeddings - share * embeddings.mean(axis=0)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def change_scores(
    starts: np.ndarray, embeddings: np.ndarray, window: float, tolerance: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """(times, scores): for each window i followed by a window starting where it ends,
    the time it ends and the cosine distance between the two."""
    if starts.size < 2:
        return np.zeros(0), np.zeros(0)
    ends = starts + window
    follower = np.searchsorted(starts, ends - tolerance)
    ok = follower < starts.size
    ok[ok] &= np.abs(starts[follower[ok]] - ends[ok]) <= tolerance
    i = np.flatnonzero(ok)
    j = follower[i]
    scores = 1.0 - np.sum(embeddings[i] * embeddings[j], axis=1)
    return ends[i], scores


def pick_changes(
    times: np.ndarray,
    scores: np.ndarray,
    region: tuple[float, float],
    threshold: float = CHANGE_THRESHOLD,
    min_gap: float = MIN_GAP,
) -> list[float]:
    """Change points in `region`: local score maxima >= `threshold`, highest first, each
    `min_gap` from the others and from the region's edges."""
    begin, end = region
    here = np.flatnonzero((times >= begin) & (times <= end))
    times, scores = times[here], scores[here]
    padded = np.r_[-np.inf, scores, -np.inf]
    peak = (scores >= padded[:-2]) & (scores >= padded[2:])
    inside = (times >= begin + min_gap) & (times <= end - min_gap) & (scores >= threshold)
    candidates = np.flatnonzero(inside & peak)
    chosen: list[float] = []
    for i in candidates[np.argsort(-scores[candidates], kind="stable")]:
        t = float(times[i])
        if all(abs(t - c) > min_gap - 1e-6 for c in chosen):
            chosen.append(t)
    return sorted(chosen)


def split_regions(
    regions: Sequence[tuple[float, float]],
    starts: np.ndarray,
    embeddings: np.ndarray,
    window: float,
    threshold: float = CHANGE_THRESHOLD,
    min_gap: float = MIN_GAP,
) -> list[Segment]:
    """The speech regions cut at their change points, each piece with its embedding."""
    times, scores = change_scores(starts, embeddings, window)
    segments: list[Segment] = []
    for begin, end in regions:
        cuts = pick_changes(times, scores, (begin, end), threshold, min_gap)
        for a, b in zip([begin, *cuts], [*cuts, end], strict=True):
            segments.append(segment_at(a, b, starts, embeddings, window))
    return segments


def segment_at(
    a: float,
    b: float,
    starts: np.ndarray,
    embeddings: np.ndarray,
    window: float,
    tolerance: float = 0.05,
) -> Segment:
    """The segment [a, b] with its embedding from the windows wholly inside it (or, when
    none is, from those whose centres fall in it)."""
    centres = starts + window / 2
    inside = np.flatnonzero((starts >= a - tolerance) & (starts + window <= b + tolerance))
    reliable = inside.size > 0
    if not inside.size:
        inside = np.flatnonzero((centres >= a) & (centres < b))
    if not inside.size:
        inside = np.array([int(np.argmin(np.abs(centres - (a + b) / 2)))])
    mean = embeddings[inside].mean(axis=0)
    mean /= max(float(np.linalg.norm(mean)), 1e-9)
    return Segment(a, b, mean, reliable)
