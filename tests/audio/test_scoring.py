"""The scorers: DER (checked against pyannote.metrics), WER, RTTM files and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processors.audio import scoring
from processors.audio.rttm import Turn, format_rttm, parse_rttm
from processors.audio.scoring import (
    der_components,
    diarization_error_rate,
    word_error_rate,
)


def random_turns(rng: np.random.Generator, labels: list[str], n: int) -> list[Turn]:
    """Each speaker's turns one after another with random pauses; speakers overlap freely."""
    turns = []
    for label in labels:
        cursor = float(rng.uniform(0, 5))
        for _ in range(n // len(labels)):
            length = float(rng.uniform(0.2, 6))
            turns.append(Turn(cursor, cursor + length, label))
            cursor += length + float(rng.uniform(0.1, 8))
    return sorted(turns, key=lambda t: t.start)


@pytest.mark.parametrize("seed", range(8))
def test_der_scorer_matches_pyannote_metrics(seed: int) -> None:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    rng = np.random.default_rng(seed)
    reference = random_turns(rng, ["a", "b", "c"], 25)
    hypothesis = random_turns(rng, ["x", "y", "z", "w"][: 2 + seed % 3], 25)

    def annotation(turns: list[Turn]) -> Annotation:
        out = Annotation()
        for i, t in enumerate(turns):
            out[Segment(t.start, t.end), i] = t.speaker
        return out

    # pyannote warns that it takes the union of both extents as the scored region: so do we.
    expected = DiarizationErrorRate(collar=0.0, skip_overlap=False)(
        annotation(reference), annotation(hypothesis)
    )
    assert diarization_error_rate(reference, hypothesis) == pytest.approx(expected, abs=1e-9)


def test_der_is_zero_for_a_relabelled_copy() -> None:
    reference = [Turn(0, 2, "a"), Turn(2.5, 4, "b"), Turn(3.5, 5, "a")]
    hypothesis = [Turn(t.start, t.end, t.speaker.upper()) for t in reference]
    assert diarization_error_rate(reference, hypothesis) == 0.0


def test_der_parts_count_missed_false_alarm_and_confusion() -> None:
    reference = [Turn(0, 4, "a"), Turn(4, 8, "b")]
    hypothesis = [Turn(1, 4, "s1"), Turn(4, 6, "s1"), Turn(6, 9, "s2")]
    parts = der_components(reference, hypothesis)
    assert parts.total == 8.0
    assert parts.missed == 1.0  # 0-1 unsaid
    assert parts.false_alarm == 1.0  # 8-9 nobody speaks
    assert parts.confusion == 2.0  # 4-6 is b's, given to a's match
    assert parts.der == pytest.approx(0.5)


def test_overlapping_speech_counts_each_speaker() -> None:
    reference = [Turn(0, 4, "a"), Turn(2, 4, "b")]
    hypothesis = [Turn(0, 4, "x")]
    parts = der_components(reference, hypothesis)
    assert (parts.total, parts.missed, parts.confusion) == (6.0, 2.0, 0.0)


def test_wer_counts_substitutions_deletions_and_insertions() -> None:
    reference = "the cat sat on the mat"
    assert word_error_rate(reference, "the cat sat on the mat") == 0.0
    assert word_error_rate(reference, "the dog sat on the mat") == pytest.approx(1 / 6)
    assert word_error_rate(reference, "the cat sat on mat") == pytest.approx(1 / 6)
    assert word_error_rate(reference, "oh the cat sat on the mat") == pytest.approx(1 / 6)


def test_wer_ignores_case_and_punctuation() -> None:
    assert word_error_rate("Good morning, everyone.", "good morning everyone") == 0.0


def test_rttm_round_trips() -> None:
    turns = [Turn(0.5, 1.75, "SPEAKER_00"), Turn(2.0, 3.0, "SPEAKER_01")]
    assert parse_rttm(format_rttm(turns, "call 7")) == {"call_7": turns}


def test_scoring_cli_prints_der_per_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ref.rttm").write_text(format_rttm([Turn(0, 4, "a"), Turn(4, 8, "b")], "f"))
    (tmp_path / "hyp.rttm").write_text(format_rttm([Turn(0, 6, "s1"), Turn(6, 8, "s2")], "job"))
    assert scoring.main([str(tmp_path / "ref.rttm"), str(tmp_path / "hyp.rttm")]) == 0
    out = capsys.readouterr().out
    assert "25.00%" in out and out.splitlines()[1].startswith("f ")


@pytest.mark.parametrize("seed", range(4))
def test_der_with_a_collar_matches_pyannote_metrics(seed: int) -> None:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    rng = np.random.default_rng(100 + seed)
    reference = random_turns(rng, ["a", "b", "c"], 25)
    hypothesis = random_turns(rng, ["x", "y", "z"], 25)

    def annotation(turns: list[Turn]) -> Annotation:
        out = Annotation()
        for i, t in enumerate(turns):
            out[Segment(t.start, t.end), i] = t.speaker
        return out

    # md-eval's collar c leaves out c either side; pyannote's collar is the whole width.
    expected = DiarizationErrorRate(collar=0.5, skip_overlap=False)(
        annotation(reference), annotation(hypothesis)
    )
    got = diarization_error_rate(reference, hypothesis, collar=0.25)
    assert got == pytest.approx(expected, abs=1e-9)


def test_a_collar_forgives_boundaries_placed_a_little_late() -> None:
    reference = [Turn(0, 4, "a"), Turn(4, 8, "b")]
    hypothesis = [Turn(0, 4.2, "A"), Turn(4.2, 8, "B")]
    assert diarization_error_rate(reference, hypothesis) > 0
    assert diarization_error_rate(reference, hypothesis, collar=0.25) == 0.0


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([(0.5, 0.9, "X"), (5.0, 5.4, "Y")], 1.0),  # labels map one-to-one onto a and b
        ([(0.5, 0.9, "X"), (5.0, 5.4, "X")], 0.5),  # one label for both speakers
        ([(3.7, 3.9, "X"), (4.1, 4.3, "Y"), (5.0, 5.4, "Y")], 1.0),  # either side of a change
        ([(3.5, 3.6, "X"), (3.65, 3.75, "Y")], 1.0),  # in the overlap either speaker is right
        ([(9.0, 9.2, "Y"), (0.5, 0.9, "X")], 1.0),  # after the last turn: its speaker
    ],
    ids=["mapped", "merged", "boundary", "overlap", "outside"],
)
def test_word_speaker_accuracy(words: list[tuple], expected: float) -> None:
    reference = [Turn(0, 4, "a"), Turn(3.4, 8, "b")]
    assert scoring.word_speaker_accuracy(reference, words) == pytest.approx(expected)


def test_word_speaker_accuracy_of_no_words_is_one() -> None:
    assert scoring.word_speaker_accuracy([Turn(0, 1, "a")], []) == 1.0
