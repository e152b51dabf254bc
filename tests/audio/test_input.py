"""Input: every supported container decodes to 16 kHz mono; bad input is a PermanentError."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from processors.audio.decode import iter_audio, load_audio
from processors.base import PermanentError
from tests.audio.conftest import RunJob
from tests.audio.synth import Conversation


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg", "m4a", "mp4"])
def test_format_decodes_to_16k_mono_of_the_same_length(
    formats: dict[str, Path], two_speakers: Conversation, ext: str
) -> None:
    audio = load_audio(formats[ext])
    original, _ = sf.read(two_speakers.path, dtype="float32")
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Lossy encoders add up to about a tenth of a second of priming and padding.
    assert audio.size / 16000 == pytest.approx(two_speakers.duration, abs=0.15)
    level = 20 * np.log10(np.sqrt(np.mean(audio**2)) / np.sqrt(np.mean(original**2)))
    assert abs(level) < 0.5  # same loudness in dB: the channels were averaged, not summed


def test_video_audio_track_is_diarized(diarize: RunJob, formats: dict[str, Path]) -> None:
    assert diarize(audio_path=formats["mp4"].name)["num_speakers"] == 2


def test_long_audio_is_decoded_in_bounded_chunks(two_speakers: Conversation) -> None:
    chunks = list(iter_audio(two_speakers.path, chunk_seconds=5.0))
    assert all(chunk.size <= 5 * 16000 for chunk in chunks)
    assert len(chunks) == int(np.ceil(two_speakers.duration / 5))
    np.testing.assert_array_equal(np.concatenate(chunks), load_audio(two_speakers.path))


def test_missing_file_is_permanent_error(diarize: RunJob) -> None:
    with pytest.raises(PermanentError, match="does not exist"):
        diarize(audio_path="sessions/42.wav")


def test_path_outside_media_root_is_permanent_error(
    diarize: RunJob, media_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.wav"
    sf.write(outside, np.zeros(16000, np.float32), 16000)
    with pytest.raises(PermanentError, match="outside the media root"):
        diarize(audio_path=str(outside))
    with pytest.raises(PermanentError, match="outside the media root"):
        diarize(audio_path="../" + outside.name)


def test_empty_file_is_permanent_error(transcribe: RunJob, media_root: Path) -> None:
    (media_root / "empty.wav").write_bytes(b"")
    with pytest.raises(PermanentError, match=r"empty\.wav"):
        transcribe(audio_path="empty.wav")


def test_audio_without_samples_is_permanent_error(diarize: RunJob, media_root: Path) -> None:
    sf.write(media_root / "no-samples.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(PermanentError, match="no samples"):
        diarize(audio_path="no-samples.wav")


def test_unsupported_file_is_permanent_error(transcribe: RunJob, media_root: Path) -> None:
    (media_root / "notes.txt").write_text("these are not sounds\n" * 100)
    with pytest.raises(PermanentError, match="not a readable audio file"):
        transcribe(audio_path="notes.txt")


def test_corrupt_audio_is_permanent_error(diarize: RunJob, media_root: Path) -> None:
    (media_root / "noise.mp3").write_bytes(np.random.default_rng(3).bytes(40_000))
    with pytest.raises(PermanentError, match=r"noise\.mp3"):
        diarize(audio_path="noise.mp3")


def test_video_without_audio_is_permanent_error(diarize: RunJob, media_root: Path) -> None:
    path = media_root / "silent-film.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(PermanentError, match="no audio track"):
        diarize(audio_path="silent-film.mp4")
