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


def _absorb_small(x: np.ndarray, labels: np.ndarray, min_size: int, keep: int) -> np.ndarray:
    """Move windows of clusters smaller than `min_size` (a cough, a laugh, an odd window)
    to the nearest remaining cluster; at least `keep` clusters stay."""
    ids, sizes = np.unique(labels, return_counts=True)
    order = np.argsort(-sizes, kind="stable")
    big = [ids[i] for i in order if sizes[i] >= min_size]
    big = big if len(big) >= keep else [ids[i] for i in order[:keep]]
    if len(big) == len(ids) or not big:
        return labels
    centroids = _normalise(np.stack([x[labels == i].mean(axis=0) for i in big]))
    small = ~np.isin(labels, big)
    labels = labels.copy()
    labels[small] = np.asarray(big)[np.argmax(x[small] @ centroids.T, axis=1)]
    return labels


def _refine(embeddings: np.ndarray, labels: np.ndarray, iterations: int = 5) -> np.ndarray:
    """A few k-means steps on the sphere: each window moves to its nearest centroid."""
    for _ in range(iterations):
        ids = np.unique(labels)
        centroids = _normalise(np.stack([embeddings[labels == i].mean(axis=0) for i in ids]))
        new = ids[np.argmax(embeddings @ centroids.T, axis=1)]
        if np.array_equal(new, labels) or np.unique(new).size < ids.size:
            break  # converged, or a speaker would vanish (the count may come from a hint)
        labels = new
    return labels


def cluster_embeddings(
    embeddings: np.ndarray,
    hints: SpeakerHints | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """Speaker index per embedding (0..k-1), numbered by first appearance.

    Average-linkage agglomerative clustering on cosine distance; without an exact hint the
    tree is cut where groups are further apart than `threshold`, tiny clusters are folded
    into their nearest neighbour, and the count is clamped to the hints.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist

    low, high = (hints or SpeakerHints()).bounds()
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    x = _normalise(np.asarray(embeddings, dtype=np.float64))
    if n == 1 or high == 1:
        return np.zeros(n, dtype=int)
    subset = np.arange(n)
    if n > MAX_CLUSTERED_WINDOWS:
        subset = np.linspace(0, n - 1, MAX_CLUSTERED_WINDOWS).astype(int)
    xs = x[subset]
    tree = linkage(pdist(xs, metric="cosine"), method="average")
    high = min(high, len(xs))
    low = min(low, high)
    if low == high:
        labels = _cut(tree, low)
    else:
        found = 1 + int(np.sum(tree[:, 2] > threshold))
        labels = _cut(tree, min(max(found, low), high))
        min_size = max(2, int(np.ceil(MIN_CLUSTER_FRACTION * len(xs))))
        labels = _absorb_small(xs, labels, min_size, keep=low)
    labels = _refine(xs, labels)
    if len(subset) < n:
        ids = np.unique(labels)
        centroids = _normalise(np.stack([xs[labels == i].mean(axis=0) for i in ids]))
        labels = ids[np.argmax(x @ centroids.T, axis=1)]
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty(order.size, dtype=int)
    remap[order] = np.arange(order.size)
    return remap[np.searchsorted(np.unique(labels), labels)]
