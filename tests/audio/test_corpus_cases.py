"""Diarization on one generated conversation per hard property (issue 16): fast turn-taking
full of boundaries, a speaker who says one sentence, loud noise, overlapping speech, and
8 kHz phone audio. The full distribution over 40 conversations is `bench/audio_corpus.py`.

Each conversation is drawn from seed 0 of its case (`tests/audio/corpus_draw.py`) and
rendered once per session. The thresholds are regression guards: the issue's targets
(DER <= 5 %, words >= 95 %, the count exact) where the diarizer meets them on these cases,
and elsewhere the measured level with a margin (docs/audio.md has the corpus-wide
distribution, and what falls short). Overlapped speech is scored, and one speaker is
given per moment, so the overlap case may lose its overlap on top.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from processors.audio.rttm import Turn
from processors.audio.scoring import der_components, word_speaker_accuracy
from tests.audio.conftest import RunJob, require_tools
from tests.audio.corpus import CorpusConversation, render
from tests.audio.corpus_draw import draw_case

COLLAR = 0.25


@pytest.fixture(scope="session")
def case(media_root: Path, diarize: RunJob):
    """`case(name, **params)`: (conversation, diarization result), once per session."""
    done: dict[tuple, tuple[CorpusConversation, dict[str, Any]]] = {}

    def run(name: str, **params: Any) -> tuple[CorpusConversation, dict[str, Any]]:
        key = (name, *sorted(params.items()))
        if key not in done:
            require_tools()
            conv = render(draw_case(name, 0), media_root)
            result = diarize(job_id=f"case-{name}", audio_path=conv.path.name, **params)
            done[key] = (conv, result)
        return done[key]

    return run


def der(conv: CorpusConversation, result: dict[str, Any]) -> float:
    reference = [Turn(t.start, t.end, t.speaker) for t in conv.turns]
    hypothesis = [Turn(s["start"], s["end"], s["speaker"]) for s in result["segments"]]
    return der_components(reference, hypothesis, COLLAR).der


def overlap_share(conv: CorpusConversation) -> float:
    """Share of reference speech time during which two people speak."""
    edges = sorted({p for t in conv.turns for p in (t.start, t.end)})
    total = overlapped = 0.0
    for a, b in itertools.pairwise(edges):
        n = sum(t.start <= a and b <= t.end for t in conv.turns)
        total += n * (b - a)
        overlapped += (b - a) * (n >= 2)
    return overlapped / total


def test_fast_turn_taking_finds_no_phantom_speaker(case) -> None:
    conv, result = case("fast-turns", transcribe=True)
    assert result["num_speakers"] == len(conv.speakers)


def test_fast_turn_taking_der_at_most_ten_percent(case) -> None:
    conv, result = case("fast-turns", transcribe=True)
    assert der(conv, result) <= 0.10


def test_fast_turn_taking_words_mostly_get_the_right_speaker(case) -> None:
    conv, result = case("fast-turns", transcribe=True)
    utterances = [Turn(u.start, u.end, u.speaker) for u in conv.utterances]
    words = [(w["start"], w["end"], w["speaker"]) for w in result["words"]]
    assert word_speaker_accuracy(utterances, words) >= 0.80


def test_one_sentence_speaker_is_found_with_the_count(case) -> None:
    conv, result = case("one-sentence", num_speakers=4)
    assert result["num_speakers"] == 4
    assert der(conv, result) <= 0.10


@pytest.mark.parametrize("name", ["noisy", "overlap", "phone"])
def test_speaker_count_is_at_most_one_off_without_hints(case, name: str) -> None:
    conv, result = case(name)
    assert abs(result["num_speakers"] - len(conv.speakers)) <= 1


def test_noisy_room_der_at_most_five_percent_with_the_count(case) -> None:
    conv, result = case("noisy", num_speakers=3)
    assert der(conv, result) <= 0.05


def test_overlapping_speech_costs_little_more_than_the_overlap(case) -> None:
    conv, result = case("overlap", num_speakers=3)
    assert der(conv, result) <= overlap_share(conv) + 0.05


def test_phone_audio_at_8_khz_der_at_most_ten_percent_with_the_count(case) -> None:
    conv, result = case("phone", num_speakers=2)
    assert der(conv, result) <= 0.10


@pytest.mark.parametrize("name", ["fast-turns", "noisy", "overlap", "phone"])
def test_no_turn_is_shorter_than_a_fifth_of_a_second(case, name: str) -> None:
    params = {"transcribe": True} if name == "fast-turns" else {}
    _, result = case(name, **params)
    assert all(s["end"] - s["start"] >= 0.2 for s in result["segments"])
