"""Diarization and transcription over the generated corpus: the distribution, not one case.

Renders conversations `--seeds FIRST:LAST` (cached in --workdir; see
`tests/audio/corpus_draw.py` for what is drawn), runs the `diarization` processor on each
the way the worker would (`transcribe: true` unless --no-transcribe), and prints one row
per conversation and then the distribution: share with the speaker count exact (no
hints), DER (0.25 s collar, overlap scored) median / 90th percentile / worst, WER median,
the median share of words given the right speaker, and the real-time factors.

    .venv/bin/python bench/audio.py --corpus                       # seeds 0:40
    .venv/bin/python bench/audio_corpus.py --seeds 1000:1040 --no-transcribe
    .venv/bin/python bench/audio_corpus.py --whisper-model base  # bundled base, not tiny.en

Jobs are told `language: en` (the corpus is English): a multilingual model would
otherwise detect the language of pitch-shifted voices, and sometimes get it wrong.

Seeds 0-39 are the held-out evaluation set; develop on others (e.g. 1000 and up).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIARIZATION_STAGES = ("decode", "vad", "embed", "cluster", "align")


def parse_seeds(text: str) -> list[int]:
    """`A:B` (B excluded) or a comma list."""
    if ":" in text:
        first, last = text.split(":")
        return list(range(int(first), int(last)))
    return [int(s) for s in text.split(",")]


def score(conv: Any, result: dict[str, Any], transcribed: bool) -> dict[str, Any]:
    """One conversation's figures."""
    from processors.audio.rttm import Turn
    from processors.audio.scoring import der_components, word_error_rate, word_speaker_accuracy

    reference = [Turn(t.start, t.end, t.speaker) for t in conv.turns]
    hypothesis = [Turn(s["start"], s["end"], s["speaker"]) for s in result["segments"]]
    timings, duration = result["timings"], result["duration"]
    row: dict[str, Any] = {
        "name": conv.path.name,
        "true": len(conv.speakers),
        "found": result["num_speakers"],
        "der": der_components(reference, hypothesis, collar=0.25).der,
        "der0": der_components(reference, hypothesis).der,
        "rtf_diar": sum(timings.get(s, 0.0) for s in DIARIZATION_STAGES) / duration,
        "rtf_stt": timings.get("transcribe", 0.0) / duration,
        "duration": duration,
    }
    if transcribed:
        utterances = [Turn(u.start, u.end, u.speaker) for u in conv.utterances]
        words = [(w["start"], w["end"], w.get("speaker", "")) for w in result["words"]]
        row["wer"] = word_error_rate(conv.text, " ".join(w["word"] for w in result["words"]))
        row["words_right"] = word_speaker_accuracy(utterances, words)
    return row


def describe(conv: Any) -> str:
    rec = conv.plan.recording
    return (
        f"{rec.sample_rate // 1000}k/{rec.channels}ch/{rec.format}/"
        f"{rec.noise}@{rec.snr_db:.0f}dB/{len(conv.plan.turns)}turns"
    )


def print_row(row: dict[str, Any], conv: Any) -> None:
    flag = " " if row["found"] == row["true"] else "!"
    extra = f"  WER {row['wer']:6.1%}  words {row['words_right']:6.1%}" if "wer" in row else ""
    print(
        f"{row['name']:<16}{row['duration']:6.0f}s  spk {row['true']}->{row['found']}{flag} "
        f"DER {row['der']:6.2%} (no collar {row['der0']:6.2%}){extra}  "
        f"RTF {row['rtf_diar']:.4f}/{row['rtf_stt']:.3f} (CPU {row['cpu_diar']:.4f}/"
        f"{row['cpu_stt']:.3f})  {describe(conv)}",
        flush=True,
    )


def summarise(rows: list[dict[str, Any]]) -> None:
    """The distribution over the corpus."""

    def dist(key: str, higher_is_better: bool = False) -> str:
        v = np.array([r[key] for r in rows])
        if higher_is_better:
            return (
                f"median {np.median(v):.2%}, p10 {np.percentile(v, 10):.2%}, worst "
                f"{v.min():.2%}, best {v.max():.2%}"
            )
        return (
            f"median {np.median(v):.2%}, p90 {np.percentile(v, 90):.2%}, worst "
            f"{v.max():.2%}, best {v.min():.2%}"
        )

    exact = np.mean([r["found"] == r["true"] for r in rows])
    over = np.mean([r["found"] > r["true"] for r in rows])
    ders = np.array([r["der"] for r in rows])
    print(f"\n{len(rows)} conversations, {sum(r['duration'] for r in rows) / 60:.1f} min")
    print(
        f"speaker count exact (no hints): {exact:.0%}   (target >= 90 %); "
        f"too many {over:.0%}, too few {1 - exact - over:.0%}"
    )
    print(f"DER, 0.25 s collar: {dist('der')}")
    print(f"  share with DER <= 5 %: {np.mean(ders <= 0.05):.0%}   (target >= 90 %, median <= 3 %)")
    print(f"DER, no collar:     {dist('der0')}")
    if "wer" in rows[0]:
        print(f"WER: {dist('wer')}   (target median <= 15 %)")
        words = dist("words_right", higher_is_better=True)
        print(f"words given the right speaker: {words}   (target median >= 95 %)")
    total = sum(r["duration"] for r in rows)
    diar = sum(r["rtf_diar"] * r["duration"] for r in rows) / total
    stt = sum(r["rtf_stt"] * r["duration"] for r in rows) / total
    print(f"RTF diarization {diar:.4f} (target <= 0.05), transcription {stt:.4f} (<= 0.1)")
    cpu_diar = sum(r["cpu_diar"] * r["duration"] for r in rows) / total
    cpu_stt = sum(r["cpu_stt"] * r["duration"] for r in rows) / total
    print(
        f"CPU RTF (CPU seconds, all threads): diarization {cpu_diar:.4f}, "
        f"transcription {cpu_stt:.4f}"
    )


def mark(marks: list[tuple[str, float]], fraction: float, stage: str | None) -> None:
    """Note the process CPU time when the job enters a new stage."""
    if stage and (not marks or marks[-1][0] != stage):
        marks.append((stage, time.process_time()))


def run(args: argparse.Namespace) -> int:
    import structlog
    import torch

    from config import AudioSettings, Settings
    from processors.audio.diarization import DiarizationProcessor
    from processors.base import Context, resolve_device
    from tests.audio.corpus import conversation

    torch.set_num_threads(args.torch_threads)
    media = args.workdir / "corpus"
    settings = Settings(
        media_root=media,
        output_dir=args.workdir / "output",
        audio=AudioSettings(cpu_threads=args.whisper_threads, whisper_model=args.whisper_model),
    )
    device = resolve_device(args.device)
    processor = DiarizationProcessor(settings)
    processor.load(device)
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    started = time.perf_counter()
    for seed in parse_seeds(args.seeds):
        conv = conversation(seed, media)
        marks: list[tuple[str, float]] = []
        ctx = Context(job_id=f"c{seed}", device=device, log=structlog.get_logger(),
                      settings=settings, _progress=functools.partial(mark, marks))  # fmt: skip
        params = processor.Params(
            audio_path=conv.path.name, transcribe=not args.no_transcribe, language="en"
        )
        row = score(conv, processor.process(params, ctx), not args.no_transcribe)
        marks.append(("end", time.process_time()))
        cpu = {stage: marks[i + 1][1] - t for i, (stage, t) in enumerate(marks[:-1])}
        row["cpu_diar"] = sum(cpu.get(s, 0.0) for s in DIARIZATION_STAGES) / row["duration"]
        row["cpu_stt"] = cpu.get("transcribe", 0.0) / row["duration"]
        rows.append(row)
        print_row(row, conv)
    summarise(rows)
    load_after = os.getloadavg()
    print(
        f"device {device}; {time.perf_counter() - started:.0f} s in all; load average (1 min) "
        f"before/after {load_before[0]:.2f}/{load_after[0]:.2f} on {os.cpu_count()} cores"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0:40", help="A:B or a comma list (default 0:40)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--whisper-threads", type=int, default=1)
    p.add_argument(
        "--whisper-model",
        default="tiny.en",
        help="AUDIO_WHISPER_MODEL (`base`: the bundled multilingual base, told `en`)",
    )
    p.add_argument("--no-transcribe", action="store_true")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/stoker-bench-audio"))
    return p


def main(argv: list[str] | None = None) -> int:
    from tests.audio.synth import tools_available

    if not tools_available():
        print("espeak-ng and sox are needed", file=sys.stderr)
        return 2
    structlog_quiet()
    return run(parser().parse_args(argv))


def structlog_quiet() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


if __name__ == "__main__":
    sys.exit(main())
