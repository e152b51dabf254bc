"""Turning per-frame "above the threshold" flags into cuts, as PySceneDetect's
`FlashFilter` does in its default MERGE mode.

A frame above the threshold at least `min_len` frames after the last one above it is a
cut at once. Before the first cut, closer ones are dropped. After it, a closer one starts
a merge: content that keeps changing (a flash, a fast pan, a cellular automaton) yields
one cut, at the last frame above the threshold, once the frames have stayed below it for
`min_len` frames and the run lasted at least `min_len` frames. Frame numbers are source
frame indices, so a frame stride keeps lengths in source frames.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MergeFilter:
    min_len: int
    last_above: int | None = None
    merge_enabled: bool = False
    merging: bool = False
    merge_start: int = 0

    def step(self, frame: int, above: bool) -> list[int]:
        """The cuts decided at `frame` (zero or one, possibly an earlier frame)."""
        if self.min_len <= 0:
            return [frame] if above else []
        if self.last_above is None:
            self.last_above = frame
        met = frame - self.last_above >= self.min_len
        if above:
            self.last_above = frame
        if self.merging:
            if met and not above and self.last_above - self.merge_start >= self.min_len:
                self.merging = False
                return [self.last_above]
            return []
        if not above:
            return []
        if met:
            self.merge_enabled = True
            return [frame]
        if self.merge_enabled:
            self.merging = True
            self.merge_start = frame
        return []


def cuts_of(flags: list[tuple[int, bool]], min_len: int) -> list[int]:
    """Every cut of a whole sequence of (frame, above) pairs."""
    f = MergeFilter(min_len)
    return [cut for frame, above in flags for cut in f.step(frame, above)]
