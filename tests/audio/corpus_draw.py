"""Random plans for the varied conversation corpus: who speaks, with which voice, what,
when, and how the result is recorded. Pure functions of a seed (no audio is made here;
`tests/audio/corpus.py` renders a plan).

Rules of a draw (issue 16):
- 2-6 speakers. Each is an espeak-ng accent, a voice variant, a pitch shift of -600 to
  +600 cents (sox), a speed of 120-180 words per minute (a conversational pace), a
  level (-6-0 dB) and a stereo pan. Two speakers of one conversation are different
  people: they have different variants and sit at least 200 cents (two semitones)
  apart. (Closer draws made voices that even a listener confuses: espeak's variants
  mostly differ in pitch.) Nothing else about the voices is chosen with the diarizer in
  mind.
- Turns of 0.5-15 s (a third of them short back-channel replies under ~1.5 s), gaps of
  0-1 s, and about one change in seven an overlap of up to 0.5 s. Speakers take part
  unevenly (Dirichlet weights): some say a single sentence, but everyone's first turn is
  a sentence (2-6 s): a participant who only ever says "yes" is not a speaker anyone
  can count.
- Background noise (white, pink or brown) at 10-30 dB SNR; 8, 16 or 44.1 kHz; mono or
  stereo; wav, mp3, ogg or m4a.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "adam", "Andrea", "Annie", "aunty", "belinda", "benjamin",
    "caleb", "david", "ed", "edward", "john", "linda", "max", "michel", "norbert", "paul",
    "quincy", "robert", "shelby", "steph", "travis", "victor", "zac",
)  # fmt: skip
"""espeak-ng voice variants that sound like a person (no whisper, croak or robot ones)."""
MIN_PITCH_APART = 200
"""Cents between any two speakers of one conversation (two semitones, about the gap
between two people's average speaking pitch)."""
SAMPLE_RATES = (8000, 16000, 44100)
FORMATS = ("wav", "mp3", "ogg", "m4a")
NOISES = ("white", "pink", "brown")

SHORT_REPLIES = (
    "Yes.", "No.", "Okay.", "Right.", "Sure.", "Exactly.", "Thanks.", "Good point.",
    "I agree.", "Not really.", "Of course.", "Makes sense.", "Go ahead.", "Fair enough.",
    "Sounds good.", "Absolutely.", "Me too.", "Why not.", "Got it.", "Perhaps.",
)  # fmt: skip
SENTENCES = (
    "Good morning everyone, let us start with the budget for the next quarter.",
    "I think we should move the launch to the second week of March.",
    "The design team finished the new landing page yesterday afternoon.",
    "Can we get the numbers from the sales department before Friday?",
    "Our customers keep asking for a simpler way to export their reports.",
    "The server migration went well and nobody noticed any downtime.",
    "We need two more engineers to finish the mobile application on time.",
    "Let me share the slides about the marketing campaign in Berlin.",
    "The weather was terrible so the outdoor event was cancelled.",
    "Please send me the contract so I can read it over the weekend.",
    "I agree with the plan but the timeline looks very optimistic.",
    "The new office has a large kitchen and a quiet library room.",
    "We tested the software on old laptops and it was still fast.",
    "Remember to update the documentation before the next release.",
    "The board wants a short summary of the risks by the end of the month.",
    "My train was late again this morning because of the snow.",
    "Let us schedule a follow up meeting with the support team.",
    "The survey shows that most users open the app every evening.",
    "I will call the supplier and ask about the delivery date.",
    "Thank you all, that was a productive discussion today.",
    "The printer on the third floor has been broken for a week.",
    "We could save money by moving the storage to a cheaper provider.",
    "Our trainee wrote a clever script that cleans the old records.",
    "The conference in Lisbon starts on a Tuesday in early June.",
    "Nobody has looked at the security report since last autumn.",
    "The coffee machine in the lobby finally works again.",
    "Sales in the northern region grew faster than we expected.",
    "I would rather hire one senior person than two juniors.",
    "The client asked whether we can deliver the first version in April.",
    "Our website was slow during the holiday sale because of the images.",
    "Let us keep the meeting short because half the team is travelling.",
    "The warehouse needs new shelves before the winter season.",
    "I spoke with the lawyers and they are happy with the wording.",
    "We should write down the decisions so that nobody forgets them.",
    "The prototype broke twice during the demonstration on Monday.",
    "Most of the complaints were about the confusing checkout page.",
    "I can take over the training sessions while Maria is on leave.",
    "The budget for travel has been cut by almost a third.",
    "Our partners in Canada want to sign the agreement next week.",
    "The old database will be switched off at the end of the year.",
    "We spent too much time on small details and missed the big picture.",
    "The students loved the workshop and asked for another one.",
    "I noticed that the battery drains quickly when the map is open.",
    "The hotel near the station was cheaper and much closer to the office.",
    "Could someone check why the nightly backup failed again?",
    "The marketing video has already been watched ten thousand times.",
    "We will need a bigger room if everyone joins the kickoff.",
    "The new intern is learning fast and asks very good questions.",
)  # fmt: skip


@dataclass(frozen=True)
class SpeakerVoice:
    """One participant's voice."""

    accent: str
    variant: str
    pitch_cents: int
    speed: int
    gain_db: float
    pan: float
    """0 = left, 1 = right (stereo recordings only)."""

    @property
    def espeak(self) -> str:
        return f"{self.accent}+{self.variant}"


@dataclass(frozen=True)
class PlannedTurn:
    """One utterance: who says what, starting `offset` seconds after the previous one ends
    (negative: it overlaps the previous one)."""

    speaker: int
    text: str
    offset: float


@dataclass(frozen=True)
class Recording:
    """How the conversation reaches the diarizer."""

    sample_rate: int
    channels: int
    format: str
    snr_db: float
    noise: str


@dataclass(frozen=True)
class Plan:
    """A whole conversation, drawn from `seed`."""

    seed: int
    voices: tuple[SpeakerVoice, ...]
    turns: tuple[PlannedTurn, ...]
    recording: Recording
    tags: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return "-".join((f"conv{self.seed:04d}", *self.tags))


def draw_pitches(rng: np.random.Generator, n: int) -> list[int]:
    """`n` pitch shifts in -600..+600 cents, every two at least MIN_PITCH_APART apart:
    uniform over all such sets (sorted draws in the spare range, spaced out, shuffled)."""
    spare = 1200 - (n - 1) * MIN_PITCH_APART
    base = np.sort(rng.uniform(0, spare, n)) + MIN_PITCH_APART * np.arange(n) - 600
    return [round(float(p)) for p in rng.permutation(base)]


def draw_voices(rng: np.random.Generator, n: int) -> tuple[SpeakerVoice, ...]:
    """`n` distinct voices: different variants, pitches MIN_PITCH_APART apart."""
    variants = rng.choice(len(VARIANTS), size=n, replace=False)
    pitches = draw_pitches(rng, n)
    return tuple(
        SpeakerVoice(
            accent=str(rng.choice(ACCENTS)),
            variant=VARIANTS[int(variant)],
            pitch_cents=pitch,
            speed=int(rng.integers(120, 181)),
            gain_db=round(float(rng.uniform(-6.0, 0.0)), 1),
            pan=round(float(rng.uniform(0.0, 1.0)), 2),
        )
        for variant, pitch in zip(variants, pitches, strict=True)
    )


def turn_text(rng: np.random.Generator, seconds: float, speed: int) -> str:
    """About `seconds` of speech at `speed` words per minute: a short reply under 1.5 s,
    else whole sentences, the last one cut at a word."""
    if seconds < 1.5:
        return str(rng.choice(SHORT_REPLIES))
    budget = max(3, round(seconds * speed / 60))
    words: list[str] = []
    while len(words) < budget:
        words.extend(str(rng.choice(SENTENCES)).split())
    text = " ".join(words[:budget])
    return text if text.endswith((".", "?")) else text.rstrip(",") + "."


@dataclass(frozen=True)
class Style:
    """How turns are taken (the defaults are the corpus's; the hard cases change them)."""

    short_share: float = 1 / 3
    """Share of turns that are short replies (0.5-1.5 s)."""
    longest: float = 15.0
    overlap_rate: float = 1 / 7
    """Share of changes of speaker that overlap (0.1-0.5 s)."""
    longest_gap: float = 1.0
    one_sentence: bool = False
    """The last speaker to appear says one sentence and nothing else."""


def turn_seconds(rng: np.random.Generator, style: Style = Style()) -> float:
    """Short replies (0.5-1.5 s) or log-uniform over 1.5 s to the longest turn."""
    if rng.random() < style.short_share:
        return float(rng.uniform(0.5, 1.5))
    return float(np.exp(rng.uniform(np.log(1.5), np.log(style.longest))))


def draw_turns(
    rng: np.random.Generator,
    voices: tuple[SpeakerVoice, ...],
    seconds: float,
    style: Style = Style(),
) -> tuple[PlannedTurn, ...]:
    """Turns until about `seconds` of conversation; everyone speaks at least once, a
    sentence or more."""
    n = len(voices)
    weights = rng.dirichlet(np.full(n, 1.5))
    order = list(rng.permutation(n))  # first appearances in a random order
    if style.one_sentence:
        weights[order[-1]] = 0.0
    turns: list[PlannedTurn] = []
    elapsed, current = 0.0, -1
    while elapsed < seconds or order:
        if order and (rng.random() < 0.4 or elapsed >= seconds or len(turns) < 1):
            speaker = int(order.pop(0))
        else:
            p = weights.copy()
            if current >= 0:
                p[current] = 0.0
            speaker = int(rng.choice(n, p=p / p.sum()))
        if speaker == current:
            continue
        if speaker in order:
            order.remove(speaker)
        length = turn_seconds(rng, style)
        if not any(t.speaker == speaker for t in turns):
            length = float(rng.uniform(2.0, 6.0))  # everyone says at least one sentence
        overlap = turns and rng.random() < style.overlap_rate
        gap = (0.0, style.longest_gap)
        offset = -float(rng.uniform(0.1, 0.5)) if overlap else float(rng.uniform(*gap))
        turns.append(PlannedTurn(speaker, turn_text(rng, length, voices[speaker].speed), offset))
        elapsed += length + offset
        current = speaker
    return tuple(turns)


def draw_recording(rng: np.random.Generator) -> Recording:
    return Recording(
        sample_rate=int(rng.choice(SAMPLE_RATES)),
        channels=int(rng.choice((1, 2))),
        format=str(rng.choice(FORMATS)),
        snr_db=round(float(rng.uniform(10.0, 30.0)), 1),
        noise=str(rng.choice(NOISES)),
    )


def draw_plan(
    seed: int,
    *,
    speakers: int | None = None,
    seconds: float | None = None,
    style: Style = Style(),
    recording: dict | None = None,
    tag: str = "",
) -> Plan:
    """The conversation of `seed`: 2-6 speakers and 40-90 s unless given; `recording`
    overrides fields of the drawn recording; `tag` names such a variant."""
    rng = np.random.default_rng([16, seed])
    n = speakers or int(rng.integers(2, 7))
    length = seconds or float(rng.uniform(40.0, 90.0))
    voices = draw_voices(rng, n)
    turns = draw_turns(rng, voices, length, style)
    drawn = replace(draw_recording(rng), **(recording or {}))
    tags = tuple(f"{k}{v:g}" for k, v in (("n", speakers), ("t", seconds)) if v)
    return Plan(seed, voices, turns, drawn, (*tags, tag) if tag else tags)


CASES: dict[str, dict] = {
    "fast-turns": {
        "speakers": 3,
        "seconds": 40.0,
        "style": Style(short_share=0.5, longest=4.0, overlap_rate=0.0, longest_gap=0.2),
    },
    "one-sentence": {"speakers": 4, "seconds": 40.0, "style": Style(one_sentence=True)},
    "noisy": {"speakers": 3, "seconds": 40.0, "recording": {"snr_db": 10.0, "noise": "pink"}},
    "overlap": {"speakers": 3, "seconds": 40.0, "style": Style(overlap_rate=0.5)},
    "phone": {
        "speakers": 2,
        "seconds": 40.0,
        "recording": {"sample_rate": 8000, "channels": 1, "format": "mp3"},
    },
}
"""The hard properties the test suite checks one conversation each of."""


def draw_case(name: str, seed: int) -> Plan:
    """The conversation of `seed` with the hard property `name` (a key of CASES)."""
    return draw_plan(seed, tag=name, **CASES[name])
