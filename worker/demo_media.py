"""Inputs for the demo, made on the spot: a short three-voice conversation (espeak-ng,
one voice pitched down with sox so the speakers are told apart) and a short clip with
hard cuts between lavfi test sources (PyAV)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

RATE = 22050  # espeak-ng's output rate
CONVERSATION: list[tuple[str, str]] = [
    ("en-us+f2", "Good morning everyone. Let us decide when we launch the new mobile app."),
    ("en-us", "I think the second week of March works, if testing finishes on time."),
    ("en-gb+m3/-500", "Testing needs two more engineers. Otherwise we slip to April."),
    ("en-us+f2", "Then we hire two contractors this week and keep the March date."),
    ("en-us", "Agreed. I will ask finance for the budget by Friday."),
    ("en-gb+m3/-500", "And I will update the release plan and send it to everyone."),
]
SHOTS: list[tuple[str, str]] = [
    ("testsrc2", ""),
    ("color", "c=red"),
    ("smptebars", ""),
    ("mandelbrot", ""),
]


def tools_missing() -> list[str]:
    """The command-line tools the conversation needs that are not on PATH."""
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def _speak(voice: str, text: str, folder: Path, n: int) -> np.ndarray:
    name, _, cents = voice.partition("/")
    raw = folder / f"u{n}.wav"
    subprocess.run(["espeak-ng", "-v", name, "-s", "150", "-w", str(raw), text], check=True)
    if cents:
        shifted = folder / f"u{n}p.wav"
        subprocess.run(["sox", str(raw), str(shifted), "pitch", cents], check=True)
        raw = shifted
    with wave.open(str(raw)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


def make_conversation(path: Path, gap_s: float = 0.6) -> float:
    """Write the conversation as a mono 16-bit WAV at `path`; its length in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        parts: list[np.ndarray] = []
        silence = np.zeros(int(gap_s * RATE), np.int16)
        for n, (voice, text) in enumerate(CONVERSATION):
            parts += [_speak(voice, text, Path(tmp), n), silence]
    audio = np.concatenate(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(audio.tobytes())
    return len(audio) / RATE


def _frames(source: str, options: str, count: int, width: int, height: int) -> list:
    import av.filter

    graph = av.filter.Graph()
    src = graph.add(source, ":".join(filter(None, [f"size={width}x{height}:rate=25", options])))
    fmt, sink = graph.add("format", "yuv420p"), graph.add("buffersink")
    src.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    return [graph.pull() for _ in range(count)]


def make_clip(path: Path, shot_s: float = 2.0, width: int = 320, height: int = 180) -> list[int]:
    """Write an H.264 clip of `SHOTS`, each `shot_s` long, at 25 fps; the cut frames."""
    import av

    per_shot = int(shot_s * 25)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for source, options in SHOTS:
            for frame in _frames(source, options, per_shot, width, height):
                frame.pts = None
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return [per_shot * i for i in range(1, len(SHOTS))]
