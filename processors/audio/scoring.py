"""Diarization error rate and word error rate, and a CLI to score RTTM files.

DER follows NIST md-eval / pyannote.metrics with overlap scored: (false alarm + missed
speech + confusion) / total reference speech, with the one-to-one speaker mapping that
maximises overlap time. No collar by default; `collar=c` leaves out +-c seconds around
every reference turn boundary (md-eval's `-c c`; pyannote.metrics' `collar=2c`): the
usual figure is `collar=0.25`.

    python -m processors.audio.scoring REF.rttm HYP.rttm [--collar 0.25]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from processors.audio.rttm import Turn, read_rttm


@dataclass(frozen=True)
class DERComponents:
    """Seconds of each error kind, and the DER they add up to."""

    total: float
    false_alarm: float
    missed: float
    confusion: float

    @property
    def der(self) -> float:
        errors = self.false_alarm + self.missed + self.confusion
        return errors / self.total if self.total > 0 else (0.0 if errors == 0 else 1.0)

    def __add__(self, other: DERComponents) -> DERComponents:
        return DERComponents(
            self.total + other.total,
            self.false_alarm + other.false_alarm,
            self.missed + other.missed,
            self.confusion + other.confusion,
        )


def _activity(turns: Sequence[Turn], bounds: np.ndarray, labels: list[str]) -> np.ndarray:
    """(segments, labels) bool: is the label speaking in each elementary segment."""
    active = np.zeros((len(bounds) - 1, len(labels)), dtype=bool)
    index = {label: i for i, label in enumerate(labels)}
    for turn in turns:
        a, b = np.searchsorted(bounds, [turn.start, turn.end])
        active[a:b, index[turn.speaker]] = True
    return active


def _collar_mask(bounds: np.ndarray, edges: np.ndarray, collar: float) -> np.ndarray:
    """For each elementary segment between `bounds`: is it outside every collar zone?"""
    if collar <= 0 or edges.size == 0:
        return np.ones(len(bounds) - 1, dtype=bool)
    middles = (bounds[:-1] + bounds[1:]) / 2
    i = np.clip(np.searchsorted(edges, middles), 1, edges.size - 1)
    nearest = np.minimum(np.abs(middles - edges[i - 1]), np.abs(middles - edges[i]))
    if edges.size == 1:
        nearest = np.abs(middles - edges[0])
    return nearest >= collar


def der_components(
    reference: Sequence[Turn], hypothesis: Sequence[Turn], collar: float = 0.0
) -> DERComponents:
    """DER components for one file (overlapping speech scored; `collar` seconds either
    side of each reference boundary left out)."""
    from scipy.optimize import linear_sum_assignment

    reference = [t for t in reference if t.end > t.start]
    hypothesis = [t for t in hypothesis if t.end > t.start]
    points = [p for t in (*reference, *hypothesis) for p in (t.start, t.end)]
    if not points:
        return DERComponents(0.0, 0.0, 0.0, 0.0)
    edges = np.unique([p for t in reference for p in (t.start, t.end)])
    points += [p for e in edges for p in (e - collar, e + collar)] if collar > 0 else []
    bounds = np.unique(np.asarray(points, dtype=np.float64))
    durations = np.diff(bounds) * _collar_mask(bounds, edges, collar)
    ref_labels = sorted({t.speaker for t in reference})
    hyp_labels = sorted({t.speaker for t in hypothesis})
    ref = _activity(reference, bounds, ref_labels)
    hyp = _activity(hypothesis, bounds, hyp_labels)
    n_ref, n_hyp = ref.sum(axis=1), hyp.sum(axis=1)
    correct = np.zeros(len(durations))
    if ref_labels and hyp_labels:
        overlap = (ref * durations[:, None]).T.astype(np.float64) @ hyp.astype(np.float64)
        rows, cols = linear_sum_assignment(overlap, maximize=True)
        correct = (ref[:, rows] & hyp[:, cols]).sum(axis=1)
    return DERComponents(
        total=float((n_ref * durations).sum()),
        false_alarm=float((np.maximum(n_hyp - n_ref, 0) * durations).sum()),
        missed=float((np.maximum(n_ref - n_hyp, 0) * durations).sum()),
        confusion=float(((np.minimum(n_ref, n_hyp) - correct) * durations).sum()),
    )


def diarization_error_rate(
    reference: Sequence[Turn], hypothesis: Sequence[Turn], collar: float = 0.0
) -> float:
    """DER of one file, as a fraction (0.05 = 5 %)."""
    return der_components(reference, hypothesis, collar).der


def word_speaker_accuracy(reference: Sequence[Turn], words: Sequence[tuple]) -> float:
    """Share of `words` ((start, end, speaker) each) given the right speaker.

    A word's true speakers are those whose reference turns cover its middle (the nearest
    turn's speaker when none does); hypothesis labels are mapped one-to-one onto reference
    speakers to maximise the words they share, as DER maps them. A word in overlapping
    speech is right when it has either speaker.
    """
    from scipy.optimize import linear_sum_assignment

    if not words:
        return 1.0
    if not reference:
        return 0.0
    refs = sorted({t.speaker for t in reference})
    hyps = sorted({w[2] for w in words})
    truth = np.zeros((len(words), len(refs)), dtype=bool)
    for n, (start, end, _) in enumerate(words):
        middle = (start + end) / 2
        covering = [t.speaker for t in reference if t.start <= middle <= t.end]
        if not covering:
            nearest = min(reference, key=lambda t: max(t.start - middle, middle - t.end))
            covering = [nearest.speaker]
        truth[n, [refs.index(s) for s in covering]] = True
    said = np.zeros((len(words), len(hyps)), dtype=bool)
    said[np.arange(len(words)), [hyps.index(w[2]) for w in words]] = True
    shared = truth.T.astype(float) @ said.astype(float)  # (refs, hyps) words in common
    rows, cols = linear_sum_assignment(shared, maximize=True)
    right = np.zeros(len(words), dtype=bool)
    for r, c in zip(rows, cols, strict=True):
        right |= truth[:, r] & said[:, c]
    return float(right.mean())


_PUNCTUATION = re.compile(r"[^\w\s']")


def normalise_words(text: str) -> list[str]:
    """Lower-case words with punctuation dropped, for WER."""
    return _PUNCTUATION.sub(" ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, on normalised words."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, other in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
        previous = current
    return previous[-1] / len(ref)


def score_files(reference: Path, hypothesis: Path, collar: float = 0.0) -> dict[str, DERComponents]:
    """DER components per file id found in the reference RTTM."""
    ref, hyp = read_rttm(reference), read_rttm(hypothesis)
    if len(ref) == 1 and len(hyp) == 1 and set(ref) != set(hyp):
        # One file each under different ids (e.g. the hypothesis named after a job): pair them.
        hyp = {next(iter(ref)): next(iter(hyp.values()))}
    return {uri: der_components(turns, hyp.get(uri, []), collar) for uri, turns in ref.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print DER (and its parts) per file and overall."""
    parser = argparse.ArgumentParser(
        prog="python -m processors.audio.scoring",
        description="Score a diarization (hypothesis RTTM) against a reference RTTM: "
        "DER with overlapping speech scored.",
    )
    parser.add_argument("reference", type=Path)
    parser.add_argument("hypothesis", type=Path)
    parser.add_argument(
        "--collar",
        type=float,
        default=0.0,
        help="seconds left out either side of each reference boundary (md-eval -c; 0.25 usual)",
    )
    args = parser.parse_args(argv)
    results = score_files(args.reference, args.hypothesis, args.collar)
    total = DERComponents(0.0, 0.0, 0.0, 0.0)
    print(
        f"{'file':<24} {'DER':>7} {'false alarm':>12} {'missed':>8} {'confusion':>10} {'speech':>8}"
    )
    for uri, parts in results.items():
        total = total + parts
        print(
            f"{uri:<24} {parts.der:7.2%} {parts.false_alarm:11.2f}s {parts.missed:7.2f}s "
            f"{parts.confusion:9.2f}s {parts.total:7.2f}s"
        )
    if len(results) > 1:
        print(f"{'TOTAL':<24} {total.der:7.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
