"""A varied, seeded set of clips with known hard cuts, for `bench/video.py`.

Each clip strings 4-6 shots together. A shot is one of the lavfi sources below (flat
colours, test patterns, bars, fractals, cellular automata, noise), some of them panned
like a moving camera (a window sliding over a frame twice as wide). Between two shots
is either a hard cut (the truth) or a 12-30 frame cross-fade, which must not count as a
cut. Clips are drawn from fixed seeds, so every run sees the same frames; `split()`
separates a development part from the rest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import av
import av.filter
import numpy as np

# (kind, lavfi source, its options): flat, patterned and textured shots.
SOURCES: list[tuple[str, str, str]] = [
    ("red", "color", "c=red"),
    ("navy", "color", "c=navy"),
    ("grey", "color", "c=gray"),
    ("testsrc", "testsrc", ""),
    ("testsrc2", "testsrc2", ""),
    ("smptebars", "smptebars", ""),
    ("rgbtestsrc", "rgbtestsrc", ""),
    ("colorspectrum", "colorspectrum", ""),
    ("mandelbrot", "mandelbrot", ""),
    ("life", "life", "mold=10:ratio=0.4:death_color=#202060:life_color=#e0c040"),
    ("cellauto", "cellauto", "rule=110"),
    ("gradients", "gradients", "speed=0.02"),
    ("noise", "color", "c=#406080"),  # with a `noise` filter: film grain on a flat field
]


@dataclass(frozen=True)
class Clip:
    seed: int
    frames: int
    cuts: list[int]
    fades: list[int]
    kinds: list[str]


def source_frames(index: int, width: int, height: int, count: int, seed: int) -> np.ndarray:
    """`count` RGB frames (count, height, width, 3) of lavfi source `SOURCES[index]`."""
    kind, name, options = SOURCES[index]
    graph = av.filter.Graph()
    size = f"size={width}x{height}:rate=30"
    if name in ("life", "cellauto"):
        size += f":seed={seed}"
    src = graph.add(name, ":".join(filter(None, [size, options])))
    chain = [src]
    if kind == "noise":
        chain.append(graph.add("noise", f"alls=12:allf=t:all_seed={seed}"))
    chain += [graph.add("format", "rgb24"), graph.add("buffersink")]
    for a, b in itertools.pairwise(chain):
        a.link_to(b)
    graph.configure()
    out = []
    for _ in range(count):
        out.append(graph.pull().to_ndarray())
    return np.stack(out)


def shot(index: int, pan: bool, width: int, height: int, count: int, seed: int) -> np.ndarray:
    """One shot; a pan slides a window 2-6 px per frame across a frame twice as wide."""
    if not pan:
        return source_frames(index, width, height, count, seed)
    wide = source_frames(index, 2 * width, height, count, seed)
    step = 2 + seed % 5
    return np.stack(
        [wide[j, :, (step * j) % width : (step * j) % width + width] for j in range(count)]
    )


def make_clip(path: Path, seed: int, width: int = 320, height: int = 180) -> Clip:
    """Encode clip `seed` (H.264, 30 fps) to `path`; its cuts and fades are returned."""
    rng = np.random.default_rng(seed)
    n_shots = int(rng.integers(4, 7))
    # Every source appears across the set: the first shot walks through them by seed.
    picks = [seed % len(SOURCES)] + [int(rng.integers(0, len(SOURCES))) for _ in range(n_shots)]
    picks = [p for i, p in enumerate(picks) if i == 0 or p != picks[i - 1]][:n_shots]
    lengths = [int(rng.integers(30, 75)) for _ in picks]
    fade_at = [bool(rng.random() < 0.3) for _ in picks[1:]]
    pans = [bool(rng.random() < 0.35) for _ in picks]
    shots = [
        shot(p, pan, width, height, n, seed * 100 + i)
        for i, (p, pan, n) in enumerate(zip(picks, pans, lengths, strict=True))
    ]
    frames: list[np.ndarray] = list(shots[0])
    cuts, fades = [], []
    for i, nxt in enumerate(shots[1:]):
        if fade_at[i]:
            span = min(int(rng.integers(12, 31)), len(nxt) - 15)
            tail = np.stack(frames[-span:]).astype(np.float32)
            weights = (np.arange(1, span + 1, dtype=np.float32) / (span + 1))[:, None, None, None]
            mixed = tail * (1 - weights) + nxt[:span].astype(np.float32) * weights
            frames[-span:] = list(mixed.round().astype(np.uint8))
            fades.append(len(frames) - span)
            frames += list(nxt[span:])
        else:
            cuts.append(len(frames))
            frames += list(nxt)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, "rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    kinds = [SOURCES[p][0] + (" (pan)" if pan else "") for p, pan in zip(picks, pans, strict=True)]
    return Clip(seed, len(frames), cuts, fades, kinds)


def split(seeds: list[int]) -> tuple[list[int], list[int]]:
    """(development, held out): every third seed is for development."""
    return [s for s in seeds if s % 3 == 0], [s for s in seeds if s % 3 != 0]


def match(found: list[int], truth: list[int], tolerance: int) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives), each truth matched once."""
    left = sorted(truth)
    tp = 0
    for f in sorted(found):
        hit = next((t for t in left if abs(t - f) <= tolerance), None)
        if hit is not None:
            left.remove(hit)
            tp += 1
    return tp, len(found) - tp, len(left)


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0
