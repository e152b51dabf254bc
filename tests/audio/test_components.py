"""Building blocks: clustering with hints, embedding windows, word-to-turn alignment,
configuration checks and registration."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from config import AudioSettings, Settings
from processors.audio.clustering import SpeakerHints, cluster_embeddings
from processors.audio.pipeline import assign_speakers, window_starts
from processors.audio.rttm import Turn
from processors.audio.words import Word
from processors.base import ConfigError, PermanentError
from tests.audio.synth import Conversation


def blobs(n_clusters: int, per_cluster: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors scattered around `n_clusters` random directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, 64))
    truth = np.repeat(np.arange(n_clusters), per_cluster)
    points = centres[truth] + rng.normal(scale=0.25, size=(truth.size, 64))
    return points / np.linalg.norm(points, axis=1, keepdims=True), truth


@pytest.mark.parametrize("n_clusters", [2, 3, 5])
def test_cluster_count_is_found_without_hint(n_clusters: int) -> None:
    points, truth = blobs(n_clusters)
    labels = cluster_embeddings(points)
    assert len(set(labels)) == n_clusters
    assert len({(t, lab) for t, lab in zip(truth, labels, strict=True)}) == n_clusters


def test_one_tight_cluster_is_one_speaker() -> None:
    points, _ = blobs(1)
    assert set(cluster_embeddings(points)) == {0}


def test_labels_are_numbered_by_first_appearance() -> None:
    points, truth = blobs(3)
    order = np.r_[np.flatnonzero(truth == 2), np.flatnonzero(truth != 2)]
    assert cluster_embeddings(points[order])[0] == 0


def test_hints_bound_the_count() -> None:
    points, _ = blobs(4)
    assert len(set(cluster_embeddings(points, SpeakerHints(num_speakers=2)))) == 2
    assert len(set(cluster_embeddings(points, SpeakerHints(max_speakers=3)))) <= 3
    assert len(set(cluster_embeddings(points, SpeakerHints(min_speakers=6)))) >= 6


def test_contradictory_hints_are_permanent_error() -> None:
    with pytest.raises(PermanentError, match="exceeds"):
        SpeakerHints(min_speakers=3, max_speakers=2).bounds()


def test_windows_cover_every_region_end_to_end() -> None:
    starts = window_starts([(1.0, 4.2), (6.0, 6.8)], window=1.5, hop=0.75, duration=10.0)
    assert starts.tolist() == pytest.approx([1.0, 1.75, 2.5, 2.7, 5.65])


def test_word_takes_the_turn_it_overlaps_most() -> None:
    turns = [Turn(0, 2, "A"), Turn(2.2, 4, "B"), Turn(6, 8, "A")]
    words = [
        Word(0.5, 0.9, "one", 1.0),
        Word(1.9, 2.5, "two", 1.0),  # mostly inside B
        Word(4.2, 4.5, "three", 1.0),  # in a pause, nearest is B
        Word(5.8, 6.3, "four", 1.0),
    ]
    assert [turns[i].speaker for i in assign_speakers(words, turns)] == ["A", "B", "B", "A"]


def test_unknown_embedding_backend_is_config_error() -> None:
    from processors.audio.diarization import DiarizationProcessor

    settings = Settings(audio=AudioSettings(embedding_backend="ivector"))
    with pytest.raises(ConfigError, match="ivector"):
        DiarizationProcessor.check_config(settings)


@pytest.mark.skipif(
    importlib.util.find_spec("pyannote.audio") is not None, reason="pyannote.audio is installed"
)
def test_pyannote_backend_without_pyannote_audio_is_config_error() -> None:
    from processors.audio.diarization import DiarizationProcessor

    settings = Settings(audio=AudioSettings(embedding_backend="pyannote"))
    with pytest.raises(ConfigError, match=r"pyannote\.audio"):
        DiarizationProcessor.check_config(settings)


def test_hop_longer_than_window_is_config_error() -> None:
    from processors.audio.transcription import TranscriptionProcessor

    settings = Settings(audio=AudioSettings(window_seconds=1.0, hop_seconds=2.0))
    with pytest.raises(ConfigError, match="HOP"):
        TranscriptionProcessor.check_config(settings)


def test_missing_whisper_model_folder_is_config_error() -> None:
    from processors.audio.transcription import TranscriptionProcessor

    settings = Settings(audio=AudioSettings(whisper_model="/nonexistent/whisper"))
    with pytest.raises(ConfigError, match="faster-whisper model folder"):
        TranscriptionProcessor.check_config(settings)


def test_registry_finds_both_audio_processors() -> None:
    from processors.audio.diarization import DiarizationProcessor
    from processors.audio.transcription import TranscriptionProcessor
    from processors.registry import get_processor_class

    assert get_processor_class("diarization") is DiarizationProcessor
    assert get_processor_class("transcription") is TranscriptionProcessor


def test_batched_embeddings_match_resemblyzer_on_its_own_features(
    two_speakers: Conversation,
) -> None:
    """The batched mel features on the device are resemblyzer's librosa ones."""
    import torch

    from processors.audio.decode import load_audio
    from processors.audio.embedding import ResemblyzerEmbedder

    embedder = ResemblyzerEmbedder("cpu")  # imports resemblyzer, hushing its scipy warning
    from resemblyzer import audio as ra

    audio = load_audio(two_speakers.path)
    windows = np.stack([audio[i * 16000 : i * 16000 + 24000] for i in range(1, 30, 4)])
    expected = []
    for window in windows:
        mel = ra.wav_to_mel_spectrogram(ra.normalize_volume(window, -30, increase_only=True))
        with torch.inference_mode():
            expected.append(embedder.encoder(torch.from_numpy(mel[None])).numpy()[0])
    cosine = np.sum(embedder.embed(windows) * np.asarray(expected), axis=1)
    assert cosine == pytest.approx(1.0, abs=1e-4)
