"""The corpus generator: reproducible draws that cover what issue 16 asks for, and a
rendered reference that lines up with the decoded audio."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from processors.audio.decode import load_audio
from tests.audio.conftest import require_tools
from tests.audio.corpus import CorpusConversation, render
from tests.audio.corpus_draw import (
    CASES,
    MIN_PITCH_APART,
    SHORT_REPLIES,
    draw_case,
    draw_plan,
)

PLANS = [draw_plan(seed) for seed in range(40)]


def test_the_same_seed_draws_the_same_conversation() -> None:
    assert draw_plan(7) == draw_plan(7)
    assert draw_plan(7) != draw_plan(8)


def test_conversations_have_two_to_six_speakers_and_all_of_them() -> None:
    counts = {len(p.voices) for p in PLANS}
    assert counts == {2, 3, 4, 5, 6}
    assert all({t.speaker for t in p.turns} == set(range(len(p.voices))) for p in PLANS)


def test_voices_differ_in_variant_and_by_two_semitones() -> None:
    for plan in PLANS:
        assert len({v.variant for v in plan.voices}) == len(plan.voices)
        for a, b in itertools.combinations(plan.voices, 2):
            assert abs(a.pitch_cents - b.pitch_cents) >= MIN_PITCH_APART - 1
        assert all(-600 <= v.pitch_cents <= 600 for v in plan.voices)


def test_everyone_first_says_a_sentence() -> None:
    for plan in PLANS:
        first = {t.speaker: t for t in reversed(plan.turns)}
        assert all(t.text not in SHORT_REPLIES for t in first.values())


def test_turns_include_short_replies_gaps_and_overlaps() -> None:
    turns = [t for p in PLANS for t in p.turns]
    assert any(t.text in SHORT_REPLIES for t in turns)
    assert all(-0.5 <= t.offset <= 1.0 for t in turns)
    assert any(t.offset < 0 for t in turns)


def test_recordings_cover_every_rate_layout_format_and_noise() -> None:
    recordings = [p.recording for p in PLANS]
    assert {r.sample_rate for r in recordings} == {8000, 16000, 44100}
    assert {r.channels for r in recordings} == {1, 2}
    assert {r.format for r in recordings} == {"wav", "mp3", "ogg", "m4a"}
    assert all(10 <= r.snr_db <= 30 for r in recordings)


def test_one_sentence_case_has_a_speaker_with_one_turn() -> None:
    plan = draw_case("one-sentence", 0)
    turns_per_speaker = np.bincount([t.speaker for t in plan.turns])
    assert turns_per_speaker.min() == 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_hard_case_is_tagged_with_its_name(name: str) -> None:
    assert draw_case(name, 3).name.endswith(name)


@pytest.fixture(scope="module")
def phone_call(tmp_path_factory: pytest.TempPathFactory) -> CorpusConversation:
    require_tools()
    return render(draw_case("phone", 5), tmp_path_factory.mktemp("corpus"))


def test_reference_speech_is_where_the_decoded_audio_is_loud(
    phone_call: CorpusConversation,
) -> None:
    audio = load_audio(phone_call.path)
    speech = np.zeros(audio.size, dtype=bool)
    for t in phone_call.turns:
        speech[int(t.start * 16000) : int(t.end * 16000)] = True
    power = audio.astype(np.float64) ** 2
    snr = 10 * np.log10(power[speech].mean() / power[~speech].mean())
    assert snr > 8  # the drawn SNR is measured on the same speech; lossy coding costs a bit


def test_a_rendered_conversation_is_read_back_from_its_cache(
    phone_call: CorpusConversation,
) -> None:
    stamp = phone_call.path.stat().st_mtime_ns
    again = render(phone_call.plan, phone_call.path.parent)
    assert again.turns == phone_call.turns
    assert phone_call.path.stat().st_mtime_ns == stamp


def test_reference_text_is_every_utterance_in_order(phone_call: CorpusConversation) -> None:
    assert phone_call.text == " ".join(t.text for t in phone_call.plan.turns)
    assert Path(phone_call.path).suffix == ".mp3"


def test_the_same_seed_renders_the_same_bytes(
    phone_call: CorpusConversation, tmp_path: Path
) -> None:
    again = render(phone_call.plan, tmp_path)
    assert again.path.read_bytes() == phone_call.path.read_bytes()
