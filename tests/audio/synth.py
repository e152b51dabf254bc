"""Synthetic conversations from known text with known turn boundaries (espeak-ng + sox).

espeak-ng's male voices sound alike to speaker models, so the three speakers differ on
purpose: a US male voice, a female variant, and a British voice shifted down with
`sox pitch -500`. Each utterance is trimmed to its audible span, so the reference turns
are exact, then placed after a silence gap with a little background noise.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice, optionally pitch-shifted with sox (in cents)."""

    espeak: str
    pitch_cents: int = 0
    speed: int = 165
    """Words per minute; slower where it helps tiny.en understand the pitch-shifted voice."""


VOICES: dict[str, Voice] = {
    "alice": Voice("en-us+f2"),
    "bob": Voice("en-us"),
    "carol": Voice("en-gb+m3", pitch_cents=-500, speed=145),
}

SENTENCES: list[str] = [
    "Good morning everyone, let us start with the budget for the next quarter",
    "I think we should move the launch to the second week of March",
    "The design team finished the new landing page yesterday afternoon",
    "Can we get the numbers from the sales department before Friday",
    "Our customers keep asking for a simpler way to export their reports",
    "The server migration went well and nobody noticed any downtime",
    "We need two more engineers to finish the mobile application on time",
    "Let me share the slides about the marketing campaign in Berlin",
    "The weather was terrible so the outdoor event was cancelled",
    "Please send me the contract so I can read it over the weekend",
    "I agree with the plan but the timeline looks very optimistic",
    "The new office has a large kitchen and a quiet library room",
    "We tested the software on old laptops and it was still fast",
    "Remember to update the documentation before the next release",
    "The board wants a short summary of the risks by the end of the month",
    "My train was late again this morning because of the snow",
    "Let us schedule a follow up meeting with the support team",
    "The survey shows that most users open the app every evening",
    "I will call the supplier and ask about the delivery date",
    "Thank you all, that was a productive discussion today",
    "The printer on the third floor has been broken for a week",
    "We could save money by moving the storage to a cheaper provider",
    "Our trainee wrote a clever script that cleans the old records",
    "The conference in Lisbon starts on a Tuesday in early June",
]


@dataclass(frozen=True)
class Turn:
    """One utterance in the reference: exact audible span, speaker and words."""

    start: float
    end: float
    speaker: str
    text: str


@dataclass
class Conversation:
    """A generated conversation: audio file, reference turns, and the full text."""

    path: Path
    duration: float
    turns: list[Turn] = field(default_factory=list)

    @property
    def speakers(self) -> set[str]:
        return {turn.speaker for turn in self.turns}

    @property
    def text(self) -> str:
        return " ".join(turn.text for turn in self.turns)

    def rttm(self, file_id: str | None = None) -> str:
        """The reference as RTTM lines."""
        uri = file_id or self.path.stem
        return "".join(
            f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
            for t in self.turns
        )


def tools_available() -> bool:
    """espeak-ng and sox are both on PATH."""
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def synthesize(text: str, voice: Voice, workdir: Path) -> np.ndarray:
    """One utterance as float32 16 kHz mono, trimmed to its audible span."""
    raw, out = workdir / "raw.wav", workdir / "out.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice.espeak, "-s", str(voice.speed), "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    effects = ["pitch", str(voice.pitch_cents)] if voice.pitch_cents else []
    subprocess.run(
        ["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out), *effects],
        check=True,
        capture_output=True,
    )
    audio, _ = sf.read(out, dtype="float32")
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def build_conversation(
    path: Path,
    script: list[tuple[str, str]],
    *,
    voices: dict[str, Voice] | None = None,
    seed: int = 0,
    gap: tuple[float, float] = (0.5, 1.0),
    noise_dbfs: float = -60.0,
) -> Conversation:
    """Write `script` ((speaker, text) turns) to `path` (any format sox writes) with gaps."""
    voices = voices or VOICES
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = []
    turns: list[Turn] = []
    cursor = 0
    with tempfile.TemporaryDirectory() as tmp:
        for speaker, text in script:
            silence = int(rng.uniform(*gap) * SAMPLE_RATE)
            pieces.append(np.zeros(silence, dtype=np.float32))
            cursor += silence
            speech = synthesize(text, voices[speaker], Path(tmp))
            pieces.append(speech)
            turns.append(
                Turn(cursor / SAMPLE_RATE, (cursor + len(speech)) / SAMPLE_RATE, speaker, text)
            )
            cursor += len(speech)
        pieces.append(np.zeros(int(gap[0] * SAMPLE_RATE), dtype=np.float32))
        audio = np.concatenate(pieces)
        audio *= 0.5 / max(float(np.abs(audio).max()), 1e-9)  # peaks at -6 dBFS
        audio += rng.normal(0.0, 10 ** (noise_dbfs / 20), audio.shape).astype(np.float32)
        wav = Path(tmp) / "conversation.wav"
        sf.write(wav, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".wav":
            shutil.copyfile(wav, path)
        else:
            subprocess.run(["sox", str(wav), str(path)], check=True, capture_output=True)
    return Conversation(path, len(audio) / SAMPLE_RATE, turns)


def round_robin_script(
    speakers: list[str], n_turns: int, *, offset: int = 0, seed: int = 0
) -> list[tuple[str, str]]:
    """`n_turns` turns cycling through the sentences, speakers in a shuffled but fair order."""
    rng = np.random.default_rng(seed)
    order: list[str] = []
    while len(order) < n_turns:
        block = list(speakers)
        rng.shuffle(block)
        if order and block[0] == order[-1]:
            block.reverse()
        order.extend(block)
    return [
        (speaker, SENTENCES[(offset + i) % len(SENTENCES)])
        for i, speaker in enumerate(order[:n_turns])
    ]
