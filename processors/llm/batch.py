"""Several `llm_analysis` jobs at once: every job's run is a series of rounds
(`Analyzer.steps`), and each round of the batch sends all jobs' conversations to the
backend in one call (`complete_each`): on the local backend that is one stream of batched
`generate` calls, on an OpenAI-compatible server one pool of concurrent requests bounded
by `LLM_CONCURRENCY`.

Jobs on different models, or with a different `max_new_tokens` or temperature, share a
round only with jobs that match them. A job needing more rounds (map-reduce, a repair)
simply stays in the loop for them; a job that fails (its own error, or a request of its
own rejected) leaves with that error and the others carry on. A failure of a whole call
(out of memory) raises: the worker then retries the jobs in smaller batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from processors.base import StopRequested
from processors.llm.analysis import Analysis, Analyzer, Steps
from processors.llm.backend import Completion, combined_failure
from processors.llm.prompts import Conversation


@dataclass
class _Run:
    index: int
    analyzer: Analyzer
    steps: Steps
    request: list[Conversation]


def run_together(runs: list[tuple[Analyzer, str]]) -> list[Analysis | Exception]:
    """Each (analyzer, transcript)'s `Analysis`, or the Exception that ended it, in order."""
    outcomes: list[Analysis | Exception | None] = [None] * len(runs)
    active: list[_Run] = []
    for index, (analyzer, transcript) in enumerate(runs):
        run = _Run(index, analyzer, analyzer.steps(transcript), [])
        if _advance(run, None, outcomes):
            active.append(run)
    while active:
        groups: dict[tuple[int, int, float], list[_Run]] = {}
        for run in active:
            key = (id(run.analyzer.backend), run.analyzer.max_new_tokens, run.analyzer.temperature)
            groups.setdefault(key, []).append(run)
        active = []
        for members in groups.values():
            for run, reply in zip(members, _round(members), strict=True):
                if isinstance(reply, Exception):
                    run.steps.close()
                    outcomes[run.index] = reply
                elif _advance(run, reply, outcomes):
                    active.append(run)
    return [outcome for outcome in outcomes if outcome is not None]


def _advance(run: _Run, reply: Any, outcomes: list[Analysis | Exception | None]) -> bool:
    """Send `reply` to the run (None starts it); True while it asks for another round."""
    try:
        run.request = run.steps.send(reply)
    except StopIteration as done:
        outcomes[run.index] = done.value
        return False
    except Exception as exc:  # this job's own failure, e.g. a transcript that cannot be chunked
        outcomes[run.index] = exc
        return False
    return True


def _round(members: list[_Run]) -> list[list[Completion] | Exception]:
    """One backend call for the requests of `members` (same backend and generation
    settings); per member its completions, or the error its own requests failed with."""
    first = members[0].analyzer

    def check_stop() -> None:
        # Mid-round, stopping pays only when no job of the round still wants its answers;
        # a job asked to stop alone leaves at the start of its next round.
        for run in members:
            try:
                run.analyzer.check_stop()
            except StopRequested:
                continue
            return
        raise StopRequested("every job of the batch was asked to stop")

    try:
        outs = first.backend.complete_each(
            [conversation for run in members for conversation in run.request],
            max_new_tokens=first.max_new_tokens,
            temperature=first.temperature,
            check_stop=check_stop,
        )
    except StopRequested as exc:
        return [StopRequested(str(exc)) for _ in members]
    replies: list[list[Completion] | Exception] = []
    start = 0
    for run in members:
        mine = outs[start : start + len(run.request)]
        start += len(run.request)
        failure = combined_failure(mine)
        replies.append(
            failure if failure is not None else [o for o in mine if isinstance(o, Completion)]
        )
    return replies
