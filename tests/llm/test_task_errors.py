"""One task's invalid answer is reported on that task; the others keep theirs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from config import Settings
from processors.base import Context, PermanentError
from processors.llm.processor import LLMAnalysisProcessor
from tests.llm.support import TRANSCRIPT, FakeOpenAIServer, Reply, completion, make_context

SCHEMA = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
TASKS = {"summary": "Summarize", "tally": {"prompt": "Count", "schema": SCHEMA}}


def answer_by_task(body: dict[str, Any]) -> Reply:
    """A plain summary; a tally that never matches its schema."""
    text = " ".join(str(m["content"]) for m in body["messages"])
    return Reply(200, completion('{"count": "three"}' if "Count" in text else "A short summary"))


def run(settings: Settings, ctx: Context | None = None, **params: Any) -> dict[str, Any]:
    processor = LLMAnalysisProcessor(settings)
    processor.load("cpu")
    try:
        values = {"transcript": TRANSCRIPT, "tasks": TASKS, **params}
        return processor.process(processor.Params(**values), ctx or make_context(settings))
    finally:
        processor.close()


def test_the_other_tasks_keep_their_answers_when_one_stays_invalid(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = answer_by_task
    result = run(openai_settings())
    assert result["results"] == {"summary": "A short summary", "tally": None}


def test_the_invalid_task_is_reported_with_what_the_model_wrote(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = answer_by_task
    error = run(openai_settings())["errors"]["tally"]
    assert "after one repair attempt" in error["error"] and "count" in error["error"]
    assert error["answer"] == error["repaired"] == '{"count": "three"}'


def test_all_or_nothing_fails_the_job_and_quotes_the_answer(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = answer_by_task
    with pytest.raises(PermanentError, match=r"""task 'tally'.*the model wrote: '\{"count"""):
        run(openai_settings(), all_or_nothing=True)


def test_the_job_fails_when_every_task_fails(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = answer_by_task
    with pytest.raises(PermanentError, match="task 'tally'"):
        run(openai_settings(), tasks={"tally": TASKS["tally"]})


def test_loading_the_model_is_reported_as_a_stage_before_generating(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = answer_by_task
    stages: list[str | None] = []
    ctx = make_context(openai_settings())
    ctx._progress = lambda fraction, stage: stages.append(stage)
    run(openai_settings(), ctx, tasks={"summary": "Summarize"})
    assert stages[:2] == ["load model", "generate"]


def test_latency_is_the_wall_time_of_the_whole_job(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    # The reply takes 0.3 s: the job's latency holds that wait, and no more than the call.
    llm_server.responder = lambda body: Reply(**{**answer_by_task(body).__dict__, "delay": 0.3})
    started = time.perf_counter()
    result = run(openai_settings(), tasks={"summary": "Summarize"})
    wall = time.perf_counter() - started
    assert 0.3 <= result["metadata"]["latency_s"] <= wall
