"""Diarization on synthesized conversations with known turns: speaker count, DER, WER,
words carrying their speaker, hints, result shape and the files it writes."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from processors.audio.rttm import Turn, read_rttm
from processors.audio.scoring import diarization_error_rate, word_error_rate
from processors.base import PermanentError, StopRequested
from tests.audio.conftest import Job, Recorder, RunJob
from tests.audio.synth import Conversation


def reference_turns(conversation: Conversation) -> list[Turn]:
    return [Turn(t.start, t.end, t.speaker) for t in conversation.turns]


def hypothesis_turns(result: dict) -> list[Turn]:
    return [Turn(s["start"], s["end"], s["speaker"]) for s in result["segments"]]


def test_three_speakers_counted_without_hint(meeting: Job) -> None:
    assert meeting.result["num_speakers"] == 3
    assert len(meeting.result["speakers"]) == 3


def test_three_speaker_der_at_most_five_percent(meeting: Job, three_speakers: Conversation) -> None:
    der = diarization_error_rate(reference_turns(three_speakers), hypothesis_turns(meeting.result))
    assert der <= 0.05


def test_three_speaker_wer_at_most_fifteen_percent(
    meeting: Job, three_speakers: Conversation
) -> None:
    hypothesis = " ".join(w["word"] for w in meeting.result["words"])
    assert word_error_rate(three_speakers.text, hypothesis) <= 0.15


def test_each_word_gets_the_speaker_who_said_it(meeting: Job, three_speakers: Conversation) -> None:
    words = meeting.result["words"]
    refs = sorted(three_speakers.speakers)
    hyps = sorted({w["speaker"] for w in words})
    said_by = []
    for word in words:
        middle = (word["start"] + word["end"]) / 2
        nearest = min(
            three_speakers.turns,
            key=lambda t: max(t.start - middle, middle - t.end, 0.0),
        )
        said_by.append(nearest.speaker)
    counts = np.zeros((len(refs), len(hyps)))
    for ref, word in zip(said_by, words, strict=True):
        counts[refs.index(ref), hyps.index(word["speaker"])] += 1
    rows, cols = linear_sum_assignment(counts, maximize=True)
    assert counts[rows, cols].sum() / len(words) >= 0.95


def test_two_speakers_counted_without_hint(diarize: RunJob, two_speakers: Conversation) -> None:
    result = diarize(audio_path="meeting2.wav")
    assert result["num_speakers"] == 2
    der = diarization_error_rate(reference_turns(two_speakers), hypothesis_turns(result))
    assert der <= 0.05


def test_single_speaker_counted_as_one(diarize: RunJob, one_speaker: Conversation) -> None:
    assert diarize(audio_path="monologue.wav")["num_speakers"] == 1


def test_num_speakers_hint_sets_the_count(diarize: RunJob, three_speakers: Conversation) -> None:
    assert diarize(audio_path="meeting3.wav", num_speakers=2)["num_speakers"] == 2


def test_min_speakers_hint_raises_the_count(diarize: RunJob, one_speaker: Conversation) -> None:
    assert diarize(audio_path="monologue.wav", min_speakers=2)["num_speakers"] == 2


def test_max_speakers_hint_caps_the_count(diarize: RunJob, three_speakers: Conversation) -> None:
    assert diarize(audio_path="meeting3.wav", max_speakers=2)["num_speakers"] <= 2


@pytest.mark.parametrize(
    "hints",
    [
        {"min_speakers": 4, "max_speakers": 2},
        {"num_speakers": 5, "max_speakers": 3},
        {"num_speakers": 1, "min_speakers": 2},
    ],
    ids=["min-above-max", "num-above-max", "num-below-min"],
)
def test_contradictory_speaker_hints_are_permanent_error(
    diarize: RunJob, three_speakers: Conversation, hints: dict[str, int]
) -> None:
    with pytest.raises(PermanentError, match="speakers"):
        diarize(audio_path="meeting3.wav", **hints)


def test_result_counts_match_its_lists(meeting: Job) -> None:
    result = meeting.result
    assert result["counts"] == {
        "speakers": len(result["speakers"]),
        "segments": len(result["segments"]),
        "words": len(result["words"]),
    }
    assert result["summary"] == (
        f"Speakers: {result['counts']['speakers']}, Segments: {result['counts']['segments']}, "
        f"Total words: {result['counts']['words']}"
    )


def test_speaking_time_adds_up_to_the_segments(meeting: Job) -> None:
    for speaker in meeting.result["speakers"]:
        own = [s for s in meeting.result["segments"] if s["speaker"] == speaker["label"]]
        assert speaker["speaking_time"] == pytest.approx(
            sum(s["end"] - s["start"] for s in own), abs=0.01
        )


def test_segments_are_ordered_and_within_the_audio(meeting: Job) -> None:
    segments = meeting.result["segments"]
    assert all(0 <= s["start"] < s["end"] <= meeting.result["duration"] for s in segments)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(segments))


def test_words_have_timestamps_speaker_and_probability(meeting: Job) -> None:
    for word in meeting.result["words"]:
        assert word["start"] <= word["end"]
        assert word["speaker"].startswith("SPEAKER_")
        assert 0.0 <= word["probability"] <= 1.0


def test_text_has_one_speaker_line_per_segment_with_words(meeting: Job) -> None:
    lines = meeting.result["text"].splitlines()
    spoken = [s for s in meeting.result["segments"] if s["text"]]
    assert lines == [f"{s['speaker']}: {s['text']}" for s in spoken]


def test_rttm_has_ten_fields(meeting: Job) -> None:
    lines = Path(meeting.result["rttm_path"]).read_text().splitlines()
    assert lines
    for line in lines:
        fields = line.split(" ")
        assert len(fields) == 10
        assert fields[0] == "SPEAKER" and fields[2] == "1"
        assert fields[5] == fields[6] == fields[8] == fields[9] == "<NA>"
        assert float(fields[3]) >= 0 and float(fields[4]) > 0


def test_rttm_holds_the_result_segments(meeting: Job) -> None:
    (turns,) = read_rttm(Path(meeting.result["rttm_path"])).values()
    assert [(t.speaker, round(t.start, 2), round(t.end, 2)) for t in turns] == [
        (s["speaker"], round(s["start"], 2), round(s["end"], 2)) for s in meeting.result["segments"]
    ]


def test_transcript_file_holds_the_text(meeting: Job) -> None:
    path = Path(meeting.result["transcript_path"])
    assert path.parent.name == "meeting-3"
    assert path.read_text().strip() == meeting.result["text"]


def test_progress_reports_every_stage_in_order(meeting: Job) -> None:
    assert meeting.recorder.stages == ["decode", "vad", "embed", "cluster", "transcribe", "align"]
    assert meeting.recorder.fractions == sorted(meeting.recorder.fractions)
    assert meeting.recorder.fractions[-1] == 1.0


def test_without_transcribe_there_are_no_words(diarize: RunJob, two_speakers: Conversation) -> None:
    result = diarize(audio_path="meeting2.wav")
    assert result["words"] == [] and result["counts"]["words"] == 0
    assert all(s["text"] == "" for s in result["segments"])


def test_silence_has_no_speakers(diarize: RunJob, media_root: Path) -> None:
    import soundfile as sf

    noise = np.random.default_rng(0).normal(0, 0.001, 16000 * 5).astype(np.float32)
    sf.write(media_root / "room-tone.wav", noise, 16000)
    result = diarize(audio_path="room-tone.wav", transcribe=True)
    assert result["num_speakers"] == 0
    assert result["segments"] == [] and result["words"] == []


def test_stop_request_ends_the_job(diarize: RunJob, two_speakers: Conversation) -> None:
    with pytest.raises(StopRequested):
        diarize(Recorder(stop=True), audio_path="meeting2.wav")
