"""Speaker embeddings behind a small seam.

`SpeakerEmbedder` is all the diarizer needs: fixed-length windows of 16 kHz audio in,
one L2-normalised vector per window out. `resemblyzer` (GE2E weights shipped in its
wheel) is the default; `pyannote` wraps a pyannote.audio embedding model where that
package and its model are installed.
"""

from __future__ import annotations

import warnings
from typing import Protocol

import numpy as np

from processors.audio import SAMPLE_RATE
from processors.base import ConfigError

BACKENDS = ("resemblyzer", "pyannote")


class SpeakerEmbedder(Protocol):
    """Turns a batch of equal-length windows (B, samples) into embeddings (B, D)."""

    dimension: int

    def embed(self, windows: np.ndarray) -> np.ndarray: ...


class ResemblyzerEmbedder:
    """Resemblyzer's GE2E LSTM; mel features are computed in batches on the same device."""

    dimension = 256
    _TARGET_DBFS = -30.0  # the level resemblyzer normalises its input to

    def __init__(self, device: str = "cpu") -> None:
        import librosa
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resemblyzer imports a deprecated scipy module
            from resemblyzer import VoiceEncoder
            from resemblyzer import hparams as hp

        self._torch = torch
        self.device = torch.device(device)
        self.encoder = VoiceEncoder(device=self.device, verbose=False).eval()
        self._n_fft = int(SAMPLE_RATE * hp.mel_window_length / 1000)
        self._hop = int(SAMPLE_RATE * hp.mel_window_step / 1000)
        mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=self._n_fft, n_mels=hp.mel_n_channels)
        self._mel_basis = torch.from_numpy(mel).to(self.device)
        self._window = torch.hann_window(self._n_fft, device=self.device)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
            # Quiet windows are raised to the training level, never lowered (as resemblyzer does).
            rms = x.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-6)
            gain = (10 ** (self._TARGET_DBFS / 20) / rms).clamp_min(1.0)
            spec = (
                torch.stft(
                    x * gain,
                    n_fft=self._n_fft,
                    hop_length=self._hop,
                    window=self._window,
                    center=True,
                    pad_mode="constant",
                    return_complex=True,
                )
                .abs()
                .pow(2)
            )
            mels = (self._mel_basis @ spec).transpose(1, 2)  # (B, frames, n_mels), librosa's
            return self.encoder(mels).cpu().numpy()


class PyannoteEmbedder:
    """A pyannote.audio embedding model (e.g. a local copy of wespeaker-resnet34)."""

    def __init__(self, device: str = "cpu", model: str | None = None) -> None:
        import torch

        try:
            from pyannote.audio import Model
        except ImportError as exc:
            raise ConfigError(
                "AUDIO_EMBEDDING_BACKEND=pyannote needs pyannote.audio installed"
            ) from exc
        if not model:
            raise ConfigError("AUDIO_EMBEDDING_BACKEND=pyannote needs AUDIO_EMBEDDING_MODEL")
        self._torch = torch
        self.device = torch.device(device)
        self.model = Model.from_pretrained(model).to(self.device).eval()
        self.dimension = int(getattr(self.model, "dimension", 0) or 0)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
            out = self.model(x.unsqueeze(1).to(self.device)).cpu().numpy()
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def check_backend(backend: str) -> None:
    """Raise ConfigError for an unknown backend or one whose package is missing."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown AUDIO_EMBEDDING_BACKEND {backend!r}; use one of {BACKENDS}")
    module = "resemblyzer" if backend == "resemblyzer" else "pyannote.audio"
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise ConfigError(f"AUDIO_EMBEDDING_BACKEND={backend} needs the {module} package")


def load_embedder(backend: str, device: str, model: str | None = None) -> SpeakerEmbedder:
    """The configured embedder, loaded on `device`."""
    check_backend(backend)
    if backend == "pyannote":
        return PyannoteEmbedder(device, model)
    return ResemblyzerEmbedder(device)
