"""Audio fixtures: conversations synthesized with espeak-ng + sox from known text with
known turns (generated once per session), the same audio in other containers, and the
two processors loaded once per session on CPU.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import structlog
import torch

from config import AudioSettings, Settings
from processors.base import Context
from tests.audio.synth import Conversation, build_conversation, round_robin_script, tools_available

# Two cores shared with other work: more threads made torch and CTranslate2 far slower.
TORCH_THREADS = 1
WHISPER_THREADS = 1
os.environ.setdefault("OMP_NUM_THREADS", "1")


@dataclass
class Recorder:
    """A job context that records progress."""

    stages: list[str] = field(default_factory=list)
    fractions: list[float] = field(default_factory=list)
    stop: bool = False

    def progress(self, fraction: float, stage: str | None) -> None:
        self.fractions.append(fraction)
        if stage and (not self.stages or self.stages[-1] != stage):
            self.stages.append(stage)


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    torch.set_num_threads(TORCH_THREADS)


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio-media")


def require_tools() -> None:
    """Skip (only) where espeak-ng or sox is missing: CI installs both."""
    if not tools_available():
        pytest.skip("espeak-ng and sox are needed to synthesize test speech")


@pytest.fixture(scope="session")
def three_speakers(media_root: Path) -> Conversation:
    """~50 s, 12 turns, three voices taking turns in a shuffled order."""
    require_tools()
    script = round_robin_script(["alice", "bob", "carol"], 12, seed=7)
    return build_conversation(media_root / "meeting3.wav", script, seed=7)


@pytest.fixture(scope="session")
def two_speakers(media_root: Path) -> Conversation:
    """~40 s, 9 turns, two voices."""
    require_tools()
    script = round_robin_script(["alice", "carol"], 9, offset=12, seed=8)
    return build_conversation(media_root / "meeting2.wav", script, seed=8)


@pytest.fixture(scope="session")
def one_speaker(media_root: Path) -> Conversation:
    """~20 s, one voice."""
    require_tools()
    script = round_robin_script(["bob"], 5, offset=5, seed=9)
    return build_conversation(media_root / "monologue.wav", script, seed=9)


@pytest.fixture(scope="session")
def formats(media_root: Path, two_speakers: Conversation) -> dict[str, Path]:
    """The two-speaker conversation as flac, mp3, ogg (sox), m4a and an mp4 video (PyAV)."""
    out: dict[str, Path] = {"wav": two_speakers.path}
    for ext in ("flac", "mp3", "ogg"):
        target = media_root / f"meeting2.{ext}"
        subprocess.run(["sox", str(two_speakers.path), str(target)], check=True)
        out[ext] = target
    out["m4a"] = encode_aac(two_speakers.path, media_root / "meeting2.m4a", video=False)
    out["mp4"] = encode_aac(two_speakers.path, media_root / "meeting2.mp4", video=True)
    return out


def encode_aac(source: Path, target: Path, *, video: bool) -> Path:
    """AAC audio (44.1 kHz stereo, like most recordings) in an mp4-family container,
    with a small H.264 picture track when `video`."""
    import soundfile as sf

    samples, rate = sf.read(source, dtype="float32")
    stereo = np.stack([samples, samples]).astype(np.float32)
    with av.open(str(target), "w", format="mp4") as out:
        picture = None
        if video:
            picture = out.add_stream("libx264", rate=2)
            picture.width, picture.height = 64, 48
            picture.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=rate, layout="stereo")
        frame_size = 1024
        for start in range(0, stereo.shape[1], frame_size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(stereo[:, start : start + frame_size]),
                format="fltp",
                layout="stereo",
            )
            frame.sample_rate = rate
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
        if picture is not None:
            seconds = stereo.shape[1] / rate
            for i in range(int(seconds * 2)):
                image = np.full((48, 64, 3), (i * 7) % 255, np.uint8)
                for packet in picture.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    out.mux(packet)
            for packet in picture.encode():
                out.mux(packet)
    return target


@pytest.fixture(scope="session")
def settings(media_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        media_root=media_root,
        output_dir=tmp_path_factory.mktemp("audio-output"),
        torch_threads=TORCH_THREADS,
        audio=AudioSettings(cpu_threads=WHISPER_THREADS),
    )


@pytest.fixture(scope="session")
def diarizer(settings: Settings) -> Any:
    from processors.audio.diarization import DiarizationProcessor

    processor = DiarizationProcessor(settings)
    processor.load("cpu")
    return processor


@pytest.fixture(scope="session")
def transcriber(settings: Settings) -> Any:
    from processors.audio.transcription import TranscriptionProcessor

    processor = TranscriptionProcessor(settings)
    processor.load("cpu")
    return processor


RunJob = Callable[..., dict[str, Any]]


def run_processor(
    processor: Any,
    settings: Settings,
    recorder: Recorder | None = None,
    job_id: str = "job",
    **params: Any,
) -> dict[str, Any]:
    """Run one job on a loaded processor, as the worker would."""
    recorder = recorder or Recorder()
    ctx = Context(
        job_id=job_id,
        device="cpu",
        log=structlog.get_logger(),
        settings=settings,
        _progress=recorder.progress,
        _stop=lambda: recorder.stop,
    )
    return processor.process(processor.Params(**params), ctx)


@pytest.fixture(scope="session")
def diarize(diarizer: Any, settings: Settings) -> RunJob:
    """Run a diarization job: `diarize(audio_path=..., ...)`."""

    def run(recorder: Recorder | None = None, job_id: str = "dia", **params: Any) -> dict:
        return run_processor(diarizer, settings, recorder, job_id, **params)

    return run


@pytest.fixture(scope="session")
def transcribe(transcriber: Any, settings: Settings) -> RunJob:
    """Run a transcription job: `transcribe(audio_path=..., ...)`."""

    def run(recorder: Recorder | None = None, job_id: str = "tr", **params: Any) -> dict:
        return run_processor(transcriber, settings, recorder, job_id, **params)

    return run


@dataclass
class Job:
    """A finished job: its result and what it reported."""

    result: dict[str, Any]
    recorder: Recorder


@pytest.fixture(scope="session")
def meeting(diarize: RunJob, three_speakers: Conversation) -> Job:
    """The three-speaker conversation diarized and transcribed, once per session."""
    recorder = Recorder()
    result = diarize(recorder, job_id="meeting-3", audio_path="meeting3.wav", transcribe=True)
    return Job(result, recorder)
