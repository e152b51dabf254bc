"""Render corpus plans (`tests/audio/corpus_draw.py`) into audio files with their reference.

Rules:
- Each utterance is synthesized by espeak-ng, pitch-shifted by sox, and trimmed to its
  audible span; utterances are mixed at 22.05 kHz at the planned offsets (overlaps add).
- The reference is exact: each utterance's speech, split where it pauses 0.3 s or more,
  is one reference turn (RTTM); the text of each utterance is kept for WER and for
  telling which speaker said a word.
- Noise is added at the planned SNR (speech power over the samples where someone
  speaks), then the mix is resampled, given its channel count and encoded by sox
  (wav, mp3, ogg) or PyAV (m4a, AAC).
- Rendered files are cached in the given folder under the plan's name, with a JSON of
  the reference: a second call with the same seed reads them back.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.audio.corpus_draw import Plan, SpeakerVoice, draw_plan

MIX_RATE = 22050
MIN_PAUSE = 0.3
"""Seconds of silence inside an utterance that split it into two reference turns."""


@dataclass(frozen=True)
class RefTurn:
    """Reference speech of one speaker, in seconds (`text`: the utterance's words, on
    utterances only)."""

    start: float
    end: float
    speaker: str
    text: str = ""


@dataclass
class CorpusConversation:
    """A rendered conversation: its file, plan, utterances and reference turns."""

    path: Path
    duration: float
    plan: Plan
    utterances: list[RefTurn] = field(default_factory=list)
    turns: list[RefTurn] = field(default_factory=list)

    @property
    def speakers(self) -> set[str]:
        return {t.speaker for t in self.turns}

    @property
    def text(self) -> str:
        return " ".join(u.text for u in sorted(self.utterances, key=lambda u: u.start))


def speaker_name(index: int) -> str:
    return f"spk{index}"


def synthesize(text: str, voice: SpeakerVoice, workdir: Path) -> np.ndarray:
    """One utterance, float32 mono at MIX_RATE, trimmed to its audible span."""
    raw, out = workdir / "raw.wav", workdir / "out.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice.espeak, "-s", str(voice.speed), "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    effects = ["pitch", str(voice.pitch_cents)] if voice.pitch_cents else []
    subprocess.run(
        [
            "sox",
            "-R",
            "-D",
            str(raw),
            "-r",
            str(MIX_RATE),
            "-c",
            "1",
            "-b",
            "16",
            str(out),
            *effects,
        ],
        check=True,
        capture_output=True,
    )
    audio, _ = sf.read(out, dtype="float32")
    loud = np.flatnonzero(np.abs(audio) > 0.01 * max(float(np.abs(audio).max()), 1e-9))
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def speech_spans(audio: np.ndarray, rate: int, min_pause: float = MIN_PAUSE) -> list[tuple]:
    """(start, end) seconds of the audible parts of a clean utterance: 10 ms frames within
    40 dB of its peak frame, pauses shorter than `min_pause` bridged."""
    frame = rate // 100
    n = audio.size // frame
    if n == 0:
        return [(0.0, audio.size / rate)]
    energy = np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
    level = 10 * np.log10(energy + 1e-12)
    active = np.flatnonzero(level > level.max() - 40)
    spans: list[list[int]] = []
    for i in active:
        if spans and (i - spans[-1][1]) * 0.01 < min_pause:
            spans[-1][1] = i + 1
        else:
            spans.append([int(i), int(i) + 1])
    return [(a * 0.01, b * 0.01) for a, b in spans]


def mix(plan: Plan, workdir: Path) -> tuple[np.ndarray, list[RefTurn], list[RefTurn]]:
    """(channels, samples) mix at MIX_RATE, the utterances and the reference turns."""
    placed: list[tuple[int, np.ndarray, int]] = []  # (speaker, audio, start sample)
    cursor, previous_start = 0, 0
    for turn in plan.turns:
        audio = synthesize(turn.text, plan.voices[turn.speaker], workdir)
        start = max(cursor + int(turn.offset * MIX_RATE), previous_start + MIX_RATE // 5, 0)
        placed.append((turn.speaker, audio, start))
        previous_start, cursor = start, max(cursor, start + audio.size)
    length = cursor + MIX_RATE // 2
    channels = plan.recording.channels
    out = np.zeros((channels, length), dtype=np.float64)
    utterances: list[RefTurn] = []
    turns: list[RefTurn] = []
    for (speaker, audio, start), planned in zip(placed, plan.turns, strict=True):
        voice = plan.voices[speaker]
        gain = 10 ** (voice.gain_db / 20) / max(float(np.sqrt(np.mean(audio**2))), 1e-6) * 0.1
        pans = (
            [1.0]
            if channels == 1
            else [np.cos(voice.pan * np.pi / 2) * 1.2, np.sin(voice.pan * np.pi / 2) * 1.2]
        )
        for c, pan in enumerate(pans):
            out[c, start : start + audio.size] += audio * gain * min(pan, 1.0)
        name, t0 = speaker_name(speaker), start / MIX_RATE
        utterances.append(RefTurn(t0, t0 + audio.size / MIX_RATE, name, planned.text))
        turns.extend(RefTurn(t0 + a, t0 + b, name) for a, b in speech_spans(audio, MIX_RATE))
    return out, utterances, sorted(turns, key=lambda t: (t.start, t.speaker))


def coloured_noise(rng: np.random.Generator, shape: tuple[int, int], colour: str) -> np.ndarray:
    """Unit-power white, pink (1/f power) or brown (1/f^2) noise."""
    white = rng.normal(size=shape)
    if colour == "white":
        return white
    spectrum = np.fft.rfft(white, axis=-1)
    f = np.maximum(np.fft.rfftfreq(shape[-1]), 1.0 / shape[-1])
    spectrum /= np.sqrt(f) if colour == "pink" else f
    shaped = np.fft.irfft(spectrum, n=shape[-1], axis=-1)
    return shaped / max(float(np.std(shaped)), 1e-12)


def add_noise(
    signal: np.ndarray, turns: list[RefTurn], snr_db: float, colour: str, seed: int
) -> np.ndarray:
    """`signal` plus noise at `snr_db` below the speech power, peak-normalised to -3 dBFS."""
    mono = signal.mean(axis=0)
    mask = np.zeros(mono.size, dtype=bool)
    for t in turns:
        mask[int(t.start * MIX_RATE) : int(t.end * MIX_RATE)] = True
    speech_power = float(np.mean(mono[mask] ** 2)) if mask.any() else 1e-4
    noise = coloured_noise(np.random.default_rng([17, seed]), signal.shape, colour)
    noisy = signal + noise * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return noisy * (10 ** (-3 / 20) / max(float(np.abs(noisy).max()), 1e-9))


def encode(audio: np.ndarray, plan: Plan, path: Path, workdir: Path) -> None:
    """Write (channels, samples) MIX_RATE audio as the plan's rate, channels and format."""
    rec = plan.recording
    source = workdir / "mix.wav"
    sf.write(source, audio.T.astype(np.float32), MIX_RATE, subtype="FLOAT")
    resampled = workdir / "resampled.wav"
    target = path if rec.format != "m4a" else resampled
    subprocess.run(
        [
            "sox",
            "-R",
            "-D",
            "-V1",
            str(source),
            "-r",
            str(rec.sample_rate),
            "-b",
            "16",
            str(target),
        ],
        check=True,
        capture_output=True,
    )
    if rec.format == "m4a":
        _encode_aac(resampled, path)


def _encode_aac(source: Path, target: Path) -> None:
    import av

    samples, rate = sf.read(source, dtype="float32", always_2d=True)
    layout = "mono" if samples.shape[1] == 1 else "stereo"
    planar = np.ascontiguousarray(samples.T)
    with av.open(str(target), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout=layout)
        for start in range(0, planar.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start : start + 1024]), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def encoder_delay(path: Path, mono: np.ndarray, most: float = 0.3) -> float:
    """Seconds by which the decoded file lags the mix: lossy encoders prime their output
    with silence (lame 1105 samples, AAC 1024) that decoders do not always remove."""
    from scipy.signal import resample_poly

    from processors.audio.decode import load_audio

    decoded = load_audio(path)[: 20 * 16000].astype(np.float64)
    original = resample_poly(mono, 320, 441)[: decoded.size]
    lags = int(most * 16000)
    size = 1 << int(np.ceil(np.log2(decoded.size + original.size)))
    spectrum = np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(original, size))
    correlation = np.fft.irfft(spectrum, size)[: lags + 1]
    return float(np.argmax(correlation)) / 16000


def shifted(turn: RefTurn, delay: float) -> RefTurn:
    return RefTurn(turn.start + delay, turn.end + delay, turn.speaker, turn.text)


def render(plan: Plan, directory: Path) -> CorpusConversation:
    """The plan as a file in `directory` with its reference (cached there)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{plan.name}.{plan.recording.format}"
    meta = directory / f"{plan.name}.json"
    if path.exists() and meta.exists():
        data = json.loads(meta.read_text())
        if data.get("plan") == _plan_json(plan):
            return CorpusConversation(
                path,
                data["duration"],
                plan,
                [RefTurn(**u) for u in data["utterances"]],
                [RefTurn(**t) for t in data["turns"]],
            )
    with tempfile.TemporaryDirectory() as tmp:
        signal, utterances, turns = mix(plan, Path(tmp))
        noisy = add_noise(signal, turns, plan.recording.snr_db, plan.recording.noise, plan.seed)
        encode(noisy, plan, path, Path(tmp))
    delay = encoder_delay(path, noisy.mean(axis=0))
    utterances = [shifted(u, delay) for u in utterances]
    turns = [shifted(t, delay) for t in turns]
    duration = signal.shape[1] / MIX_RATE + delay
    meta.write_text(
        json.dumps(
            {
                "plan": _plan_json(plan),
                "duration": duration,
                "utterances": [asdict(u) for u in utterances],
                "turns": [asdict(t) for t in turns],
            },
            indent=1,
        )
    )
    return CorpusConversation(path, duration, plan, utterances, turns)


def _plan_json(plan: Plan) -> dict:
    return json.loads(json.dumps(asdict(plan)))


def conversation(seed: int, directory: Path, **overrides: int | float) -> CorpusConversation:
    """Draw and render the conversation of `seed` (see `draw_plan` for `overrides`)."""
    return render(draw_plan(seed, **overrides), directory)  # type: ignore[arg-type]
