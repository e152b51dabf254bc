"""Several `llm_analysis` jobs in one `process_batch` call on the local backend (the real
shipped SmolLM2 model, greedy decoding): one result or error per job, each job's result
as it is when the job runs alone, and everything generated together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from processors.base import Item, PermanentError, StopRequested
from processors.llm.processor import LLMAnalysisProcessor, PreparedAnalysis
from tests.llm.support import TRANSCRIPT, make_context
from tests.llm.test_local import spy_generate

pytestmark = pytest.mark.slow

LINES = TRANSCRIPT.splitlines()
#: Three different meetings (the sample's lines in other orders) with their own tasks.
JOBS: list[dict[str, Any]] = [
    {"transcript": TRANSCRIPT, "tasks": {"summary": "Provide a brief summary"}},
    {
        "transcript": "\n".join(LINES[2:] + LINES[:2]),
        "tasks": {"decisions": "List key decisions", "owners": "Who does what?"},
    },
    {
        "transcript": "\n".join(reversed(LINES)),
        "tasks": {"actions": "List the action items", "mood": "Describe the mood"},
    },
]


def item(processor: LLMAnalysisProcessor, stop: bool = False, **params: Any) -> Item:
    parsed = processor.Params(**params)
    ctx = make_context(processor.settings, stop=stop)
    return Item(parsed, processor.prepare(parsed, ctx), ctx)


def alone(processor: LLMAnalysisProcessor, **params: Any) -> dict[str, Any]:
    return processor.process(processor.Params(**params), make_context(processor.settings))


@pytest.fixture(scope="module")
def batch(local_processor: LLMAnalysisProcessor) -> list[Any]:
    return local_processor.process_batch([item(local_processor, **job) for job in JOBS])


def test_a_batch_of_llm_jobs_gives_each_job_its_own_result(batch: list[Any]) -> None:
    assert len(batch) == len(JOBS)
    for job, result in zip(JOBS, batch, strict=True):
        assert list(result["results"]) == list(job["tasks"])
        assert all(isinstance(answer, str) and answer for answer in result["results"].values())
        assert list(result["metadata"]["usage"]["tasks"]) == list(job["tasks"])
        assert result["metadata"]["calls"] == len(job["tasks"])


def test_batched_greedy_answers_match_each_job_run_alone(
    local_processor: LLMAnalysisProcessor, batch: list[Any]
) -> None:
    # Left padding, the shared system-prompt pass and the other jobs' rows must leave
    # every row's greedy answer, and what it cost, exactly as they are alone.
    for job, result in zip(JOBS, batch, strict=True):
        single = alone(local_processor, **job)
        assert result["results"] == single["results"]
        assert result["metadata"]["usage"] == single["metadata"]["usage"]


def test_all_tasks_of_all_jobs_go_through_one_generate(
    local_processor: LLMAnalysisProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_generate(local_processor, monkeypatch)
    local_processor.process_batch([item(local_processor, **job) for job in JOBS])
    assert len(calls) == 1
    assert calls[0]["input_ids"].shape[0] == sum(len(job["tasks"]) for job in JOBS)


def test_jobs_of_a_batch_share_one_pass_over_their_common_system_prompt(
    local_processor: LLMAnalysisProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = local_processor.backend.model  # type: ignore[union-attr]
    real = model.forward
    shapes: list[tuple[int, ...]] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        shapes.append(tuple(kwargs["input_ids"].shape))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "forward", recording)
    local_processor.process_batch([item(local_processor, **job, max_new_tokens=2) for job in JOBS])
    head, rest = shapes[0], shapes[1]
    assert head[0] == 1 and head[1] > 20  # chat template and system prompt, once
    assert rest[0] == len(JOBS)  # then each job's transcript, one row per job


def test_one_missing_transcript_fails_only_its_own_item(
    local_processor: LLMAnalysisProcessor,
) -> None:
    first, missing = JOBS[0], {"transcript_path": "nowhere/meeting.txt", "tasks": {"a": "b"}}
    outcomes = local_processor.process_batch(
        [item(local_processor, **first), item(local_processor, **missing)]
    )
    assert isinstance(outcomes[1], PermanentError)
    assert "does not exist" in str(outcomes[1])
    assert outcomes[0]["results"] == alone(local_processor, **first)["results"]


def test_a_job_whose_answer_fails_its_schema_fails_alone_after_its_repair(
    local_processor: LLMAnalysisProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_generate(local_processor, monkeypatch)
    unsatisfiable = {"owners": {"prompt": "List owners", "schema": {"not": {}}}}
    outcomes = local_processor.process_batch(
        [
            item(local_processor, **JOBS[0]),
            item(local_processor, transcript=TRANSCRIPT, tasks=unsatisfiable),
        ]
    )
    assert isinstance(outcomes[1], PermanentError)
    assert "after one repair attempt" in str(outcomes[1])
    assert outcomes[0]["results"] == alone(local_processor, **JOBS[0])["results"]
    # Round one holds both jobs; the repair round only the job that needs it.
    assert [call["input_ids"].shape[0] for call in calls[:2]] == [2, 1]


def test_jobs_asking_for_different_answer_lengths_each_get_their_own(
    local_processor: LLMAnalysisProcessor,
) -> None:
    short, long = (item(local_processor, **JOBS[1], max_new_tokens=n) for n in (2, 6))
    outcomes = local_processor.process_batch([short, long])
    for outcome, limit in zip(outcomes, (2, 6), strict=True):
        assert outcome["metadata"]["max_new_tokens"] == limit
        tasks = outcome["metadata"]["usage"]["tasks"].values()
        assert all(0 < task["completion_tokens"] <= limit for task in tasks)


def test_a_job_asked_to_stop_leaves_the_batch_and_the_others_finish(
    local_processor: LLMAnalysisProcessor,
) -> None:
    outcomes = local_processor.process_batch(
        [
            item(local_processor, **JOBS[0], max_new_tokens=2),
            item(local_processor, stop=True, **JOBS[1]),
        ]
    )
    assert isinstance(outcomes[1], StopRequested)
    assert list(outcomes[0]["results"]) == ["summary"]


def test_a_from_job_transcript_is_read_when_the_batch_runs(
    local_processor: LLMAnalysisProcessor,
) -> None:
    # `prepare` runs on another thread than the job and must not ask the worker for
    # another job's result; the transcript is fetched when the job runs.
    params = local_processor.Params(from_job="tr-1", tasks={"summary": "Summarize"})
    finished = {"tr-1": {"text": TRANSCRIPT}}
    prepared = local_processor.prepare(params, make_context(local_processor.settings))
    assert prepared.transcript is None and prepared.error is None
    ctx = make_context(local_processor.settings, finished)
    other = item(local_processor, **JOBS[1], max_new_tokens=2)
    outcomes = local_processor.process_batch([Item(params, prepared, ctx), other])
    assert [list(outcome["results"]) for outcome in outcomes] == [
        ["summary"],
        list(JOBS[1]["tasks"]),
    ]


def test_prepare_reads_the_transcript_file_ahead(
    local_settings_factory: Callable[..., Settings],
    local_processor: LLMAnalysisProcessor,
) -> None:
    media: Path = local_settings_factory().media_root
    (media / "meeting.txt").write_text(TRANSCRIPT, encoding="utf-8")
    params = local_processor.Params(transcript_path="meeting.txt", tasks={"s": "Summarize"})
    prepared = local_processor.prepare(params, make_context(local_processor.settings))
    (media / "meeting.txt").unlink()
    assert isinstance(prepared, PreparedAnalysis) and prepared.transcript == TRANSCRIPT
    result = local_processor.process(prepared, make_context(local_processor.settings))
    assert list(result["results"]) == ["s"]


def test_a_transcript_that_cannot_be_read_fails_its_job_when_it_runs(
    local_processor: LLMAnalysisProcessor,
) -> None:
    params = local_processor.Params(transcript_path="missing.txt", tasks={"s": "Summarize"})
    prepared = local_processor.prepare(params, make_context(local_processor.settings))
    assert isinstance(prepared.error, PermanentError)
    with pytest.raises(PermanentError, match="does not exist"):
        local_processor.process(prepared, make_context(local_processor.settings))
