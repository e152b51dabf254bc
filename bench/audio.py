"""Audio benchmark: real-time factor of each diarization and transcription stage.

Generates a multi-speaker conversation with espeak-ng + sox (10 minutes by default,
cached in --workdir), runs the `diarization` processor with `transcribe: true` on it the
way the worker would, and prints seconds and RTF (seconds of work per second of audio)
per stage, with DER, WER, the speaker count, peak memory and the machine's load.

    .venv/bin/python bench/audio.py [--minutes 10] [--repeat 6] [--device cpu]

`--repeat N` tiles the conversation N times (e.g. 6 x 10 min = 1 hour) to check memory.

    .venv/bin/python bench/audio.py --corpus [--seeds 0:40] [--no-transcribe]

runs `bench/audio_corpus.py` instead: 40 generated conversations (2-6 speakers, varied
voices, noise, rates and formats) and the distribution of speaker-count accuracy, DER,
WER, words given the right speaker and real-time factors.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.audio.synth import (
    SAMPLE_RATE,
    Conversation,
    Turn,
    build_conversation,
    round_robin_script,
    tools_available,
)

SPEAKERS = ["alice", "bob", "carol"]


def conversation(workdir: Path, minutes: float) -> Conversation:
    """A cached conversation of about `minutes` minutes (~4.3 s per turn)."""
    path = workdir / f"conversation-{minutes:g}min.wav"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        data = json.loads(meta.read_text())
        return Conversation(path, data["duration"], [Turn(**t) for t in data["turns"]])
    script = round_robin_script(SPEAKERS, max(3, int(minutes * 60 / 4.3)), seed=42)
    conv = build_conversation(path, script, seed=42)
    meta.write_text(
        json.dumps({"duration": conv.duration, "turns": [t.__dict__ for t in conv.turns]})
    )
    return conv


def tiled(conv: Conversation, repeat: int) -> Conversation:
    """The conversation played `repeat` times in a row."""
    if repeat == 1:
        return conv
    path = conv.path.with_name(f"{conv.path.stem}-x{repeat}.wav")
    audio, _ = sf.read(conv.path, dtype="float32")
    if not path.exists():
        sf.write(path, np.tile(audio, repeat), SAMPLE_RATE, subtype="PCM_16")
    length = audio.size / SAMPLE_RATE
    turns = [
        Turn(t.start + i * length, t.end + i * length, t.speaker, t.text)
        for i in range(repeat)
        for t in conv.turns
    ]
    return Conversation(path, length * repeat, turns)


def main() -> int:
    if "--corpus" in sys.argv[1:]:
        from bench.audio_corpus import main as corpus_main

        return corpus_main([a for a in sys.argv[1:] if a != "--corpus"])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--whisper-threads", type=int, default=1)
    parser.add_argument("--beam-size", type=int, default=None)
    parser.add_argument("--no-transcribe", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/stoker-bench-audio"))
    args = parser.parse_args()
    if not tools_available():
        print("espeak-ng and sox are needed", file=sys.stderr)
        return 2

    import structlog
    import torch

    from config import AudioSettings, Settings
    from processors.audio.diarization import DiarizationProcessor
    from processors.audio.rttm import Turn as RTurn
    from processors.audio.scoring import der_components, word_error_rate
    from processors.base import Context, resolve_device

    torch.set_num_threads(args.torch_threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    conv = tiled(conversation(args.workdir, args.minutes), args.repeat)
    print(
        f"audio: {conv.duration / 60:.1f} min, {len(conv.turns)} turns, 3 speakers "
        f"(generated/loaded in {time.perf_counter() - started:.1f} s)"
    )

    audio_settings: dict = {"cpu_threads": args.whisper_threads}
    if args.beam_size:
        audio_settings["beam_size"] = args.beam_size
    settings = Settings(
        media_root=conv.path.parent,
        output_dir=args.workdir / "output",
        audio=AudioSettings(**audio_settings),
    )
    device = resolve_device(args.device)
    processor = DiarizationProcessor(settings)
    started = time.perf_counter()
    processor.load(device)
    load_seconds = time.perf_counter() - started
    load_before = os.getloadavg()
    # Stage changes seen through progress give each stage's CPU time too: on a shared
    # machine, wall time depends on the neighbours, CPU time much less.
    marks: list[tuple[str, float]] = []

    def progress(fraction: float, stage: str | None) -> None:
        if stage and (not marks or marks[-1][0] != stage):
            marks.append((stage, time.process_time()))

    ctx = Context(
        job_id="bench",
        device=device,
        log=structlog.get_logger(),
        settings=settings,
        _progress=progress,
    )
    started = time.perf_counter()
    result = processor.process(
        processor.Params(audio_path=conv.path.name, transcribe=not args.no_transcribe), ctx
    )
    wall = time.perf_counter() - started
    marks.append(("end", time.process_time()))
    cpu = {stage: marks[i + 1][1] - t for i, (stage, t) in enumerate(marks[:-1])}
    load_after = os.getloadavg()

    duration = result["duration"]
    timings = result["timings"]
    print(
        f"device: {device}, torch threads {args.torch_threads}, "
        f"CTranslate2 threads {args.whisper_threads}, models loaded in {load_seconds:.1f} s"
    )
    print(f"\n{'stage':<14}{'seconds':>9}{'RTF':>9}{'CPU s':>9}{'CPU RTF':>9}")

    def row(name: str, stages: tuple[str, ...], note: str = "") -> None:
        seconds = sum(timings.get(s, 0.0) for s in stages)
        cpu_seconds = sum(cpu.get(s, 0.0) for s in stages)
        print(
            f"{name:<14}{seconds:9.2f}{seconds / duration:9.4f}"
            f"{cpu_seconds:9.2f}{cpu_seconds / duration:9.4f}{note}"
        )

    for stage in ("decode", "vad", "embed", "cluster", "transcribe", "align"):
        if stage in timings:
            row(stage, (stage,))
    row("diarization", ("decode", "vad", "embed", "cluster", "align"), "  (target <= 0.05)")
    if "transcribe" in timings:
        row("transcription", ("transcribe",), "  (target <= 0.1)")
    print(f"{'job total':<14}{wall:9.2f}{wall / duration:9.4f}")
    print("(CPU s counts every thread: CTranslate2 runs on --whisper-threads threads)")

    reference = [RTurn(t.start, t.end, t.speaker) for t in conv.turns]
    hypothesis = [RTurn(s["start"], s["end"], s["speaker"]) for s in result["segments"]]
    parts = der_components(reference, hypothesis)
    print(f"\nspeakers found: {result['num_speakers']} (3 in the reference)")
    print(
        f"DER: {parts.der:.2%} (false alarm {parts.false_alarm:.1f} s, missed "
        f"{parts.missed:.1f} s, confusion {parts.confusion:.1f} s of {parts.total:.0f} s)"
    )
    if not args.no_transcribe:
        hyp_text = " ".join(w["word"] for w in result["words"])
        print(f"WER: {word_error_rate(conv.text, hyp_text):.2%}")
    print(f"{result['summary']}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS): {peak:.0f} MiB")
    print(
        f"load average (1 min) before/after: {load_before[0]:.2f}/{load_after[0]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
