"""Cluster window embeddings into speakers, with the speaker count found automatically
(a distance threshold on an agglomerative tree) or set or bounded by pyannote-style hints."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from processors.base import PermanentError

MAX_AUTO_SPEAKERS = 10
DEFAULT_THRESHOLD = 0.3
"""Average cosine distance above which two groups of windows are different speakers.
GE2E windows of one voice sit about 0.15-0.25 apart; different voices (even similar
synthetic ones) 0.35 and more."""
MIN_CLUSTER_FRACTION = 0.01
"""Clusters holding fewer windows than this share (and at least 2) are folded away."""
MAX_CLUSTERED_WINDOWS = 3000
"""Longer inputs cluster a spread-out subset and assign the rest to the nearest centroid,
keeping the O(n^2) distance matrix small."""


@dataclass(frozen=True)
class SpeakerHints:
    """pyannote-style hints: an exact count, or bounds."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    def bounds(self) -> tuple[int, int]:
        """(low, high) speaker counts allowed; PermanentError when contradictory."""
        low, high = self.min_speakers or 1, self.max_speakers or MAX_AUTO_SPEAKERS
        if self.max_speakers is not None and self.min_speakers is None:
            low = min(low, high)
        if self.min_speakers is not None and self.max_speakers is None:
            high = max(high, low)
        if low > high:
            raise PermanentError(
                f"min_speakers={self.min_speakers} exceeds max_speakers={self.max_speakers}"
            )
        if self.num_speakers is not None:
            if not low <= self.num_speakers <= high:
                raise PermanentError(
                    f"num_speakers={self.num_speakers} contradicts "
                    f"min_speakers={self.min_speakers}, max_speakers={self.max_speakers}"
                )
            return self.num_speakers, self.num_speakers
        return low, high


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def _cut(tree: np.ndarray, k: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster

    return fcluster(tree, t=k, criterion="maxclust") - 1


def _absorb_small(
    x: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    min_weight: float,
    keep: int,
    anchors: np.ndarray | None = None,
) -> np.ndarray:
    """Move the items of clusters weighing less than `min_weight` in all (a cough, a
    laugh, stray windows: too little speech to be a participant) to the nearest remaining
    cluster; at least `keep` clusters stay."""
    ids = np.unique(labels)
    totals = np.array([weights[labels == i].sum() for i in ids])
    order = np.argsort(-totals, kind="stable")
    anchored = [anchors is None or bool(anchors[labels == i].any()) for i in ids]
    big = [ids[i] for i in order if totals[i] >= min_weight and anchored[i]]
    big = big if len(big) >= keep else [ids[i] for i in order[:keep]]
    if len(big) == len(ids) or not big:
        return labels
    centroids = _centroids(x, labels, weights, big)
    small = ~np.isin(labels, big)
    labels = labels.copy()
    labels[small] = np.asarray(big)[np.argmax(x[small] @ centroids.T, axis=1)]
    return labels


def _centroids(x: np.ndarray, labels: np.ndarray, weights: np.ndarray, ids) -> np.ndarray:
    return _normalise(
        np.stack([(x[labels == i] * weights[labels == i, None]).sum(axis=0) for i in ids])
    )


def _refine(
    x: np.ndarray, labels: np.ndarray, weights: np.ndarray, iterations: int = 5
) -> np.ndarray:
    """A few k-means steps on the sphere: each item moves to its nearest centroid."""
    for _ in range(iterations):
        ids = np.unique(labels)
        new = ids[np.argmax(x @ _centroids(x, labels, weights, ids).T, axis=1)]
        if np.array_equal(new, labels) or np.unique(new).size < ids.size:
            break  # converged, or a speaker would vanish (the count may come from a hint)
        labels = new
    return labels


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    ids, first = np.unique(labels, return_index=True)
    remap = np.empty(ids.size, dtype=int)
    remap[np.argsort(first)] = np.arange(ids.size)
    return remap[np.searchsorted(ids, labels)]


def cluster_embeddings(
    embeddings: np.ndarray,
    hints: SpeakerHints | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    weights: np.ndarray | None = None,
    min_weight: float | None = None,
    core: np.ndarray | None = None,
    anchors: np.ndarray | None = None,
) -> np.ndarray:
    """Speaker index per embedding (0..k-1), numbered by first appearance.

    Average-linkage agglomerative clustering on cosine distance over the `core` items
    (default all); without an exact hint the tree is cut where groups are further apart
    than `threshold`, clusters weighing less than `min_weight` in all (`weights`: e.g.
    seconds of speech; default 1 per item and 1 % of the items), or holding none of the
    `anchors` (items trusted to found a speaker), are folded into their nearest
    neighbour, and the count is clamped to the hints. Items outside the core then
    join their nearest cluster.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist

    low, high = (hints or SpeakerHints()).bounds()
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    x = _normalise(np.asarray(embeddings, dtype=np.float64))
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n == 1 or high == 1:
        return np.zeros(n, dtype=int)
    subset = np.arange(n) if core is None else np.flatnonzero(core)
    if subset.size < max(2, low):
        subset = np.arange(n)  # too few confident items for the count asked
    if subset.size > MAX_CLUSTERED_WINDOWS:
        subset = subset[np.linspace(0, subset.size - 1, MAX_CLUSTERED_WINDOWS).astype(int)]
    xs, ws = x[subset], w[subset]
    tree = linkage(pdist(xs, metric="cosine"), method="average")
    high = min(high, len(xs))
    low = min(low, high)
    if low == high:
        labels = _cut(tree, low)
    else:
        found = 1 + int(np.sum(tree[:, 2] > threshold))
        labels = _cut(tree, min(max(found, low), high))
        if min_weight is None:
            min_weight = max(2.0, np.ceil(MIN_CLUSTER_FRACTION * ws.sum()))
        anchor = None if anchors is None else np.asarray(anchors)[subset]
        labels = _absorb_small(xs, labels, ws, min_weight, keep=low, anchors=anchor)
    labels = _refine(xs, labels, ws)
    if len(subset) < n:
        ids = np.unique(labels)
        full = ids[np.argmax(x @ _centroids(xs, labels, ws, ids).T, axis=1)]
        full[subset] = labels
        labels = full
    return _first_appearance(labels)
