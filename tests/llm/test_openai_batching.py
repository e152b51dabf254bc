"""A batch of `llm_analysis` jobs on the OpenAI-compatible backend, against a real local
HTTP server: every job's requests go out together, at most LLM_CONCURRENCY at a time, and
a request the server refuses fails only the job it belongs to."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from config import Settings
from processors.base import Item, PermanentError, TransientError
from processors.llm.processor import LLMAnalysisProcessor
from tests.llm.support import FakeOpenAIServer, Reply, default_reply, make_context

TASKS = {"summary": "Provide a brief summary", "decisions": "List key decisions"}


@pytest.fixture
def make_processor(
    openai_settings: Callable[..., Settings],
) -> Iterator[Callable[..., LLMAnalysisProcessor]]:
    made: list[LLMAnalysisProcessor] = []

    def make(**llm: Any) -> LLMAnalysisProcessor:
        processor = LLMAnalysisProcessor(openai_settings(**llm))
        processor.load("cpu")
        made.append(processor)
        return processor

    yield make
    for processor in made:
        processor.close()


def items(processor: LLMAnalysisProcessor, transcripts: list[str]) -> list[Item]:
    out = []
    for transcript in transcripts:
        params = processor.Params(transcript=transcript, tasks=TASKS)
        ctx = make_context(processor.settings)
        out.append(Item(params, processor.prepare(params, ctx), ctx))
    return out


def transcript_of(body: dict[str, Any]) -> str:
    return body["messages"][1]["content"].split('"""')[1].strip()


def test_a_batch_sends_every_task_of_every_job_and_answers_each_job(
    make_processor: Callable[..., LLMAnalysisProcessor], llm_server: FakeOpenAIServer
) -> None:
    processor = make_processor()
    outcomes = processor.process_batch(items(processor, ["A: one.", "B: two.", "C: three."]))
    assert len(llm_server.requests) == 3 * len(TASKS)
    for outcome in outcomes:
        assert outcome["results"] == {name: f"answer to: {p}" for name, p in TASKS.items()}
        assert outcome["metadata"]["calls"] == len(TASKS)


def test_llm_concurrency_bounds_the_requests_of_the_whole_batch(
    make_processor: Callable[..., LLMAnalysisProcessor], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = lambda body: Reply(**{**default_reply(body).__dict__, "delay": 0.05})
    processor = make_processor(concurrency=3)
    processor.process_batch(items(processor, [f"S{i}: hello." for i in range(4)]))
    assert len(llm_server.requests) == 8
    assert llm_server.max_in_flight == 3


def test_a_request_refused_for_one_job_fails_only_that_job(
    make_processor: Callable[..., LLMAnalysisProcessor], llm_server: FakeOpenAIServer
) -> None:
    def refuse_b(body: dict[str, Any]) -> Reply:
        if transcript_of(body) == "B: too long.":
            return Reply(400, {"error": {"message": "context length exceeded"}})
        return default_reply(body)

    llm_server.responder = refuse_b
    processor = make_processor()
    outcomes = processor.process_batch(items(processor, ["A: fine.", "B: too long.", "C: ok."]))
    assert isinstance(outcomes[1], PermanentError)
    assert "context length exceeded" in str(outcomes[1])
    assert [list(outcomes[i]["results"]) for i in (0, 2)] == [list(TASKS)] * 2


def test_a_rate_limited_job_retries_alone_after_the_wait_the_server_asked(
    make_processor: Callable[..., LLMAnalysisProcessor], llm_server: FakeOpenAIServer
) -> None:
    def limit_a(body: dict[str, Any]) -> Reply:
        if transcript_of(body) == "A: busy.":
            return Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "7"})
        return default_reply(body)

    llm_server.responder = limit_a
    processor = make_processor()
    outcomes = processor.process_batch(items(processor, ["A: busy.", "B: fine."]))
    assert isinstance(outcomes[0], TransientError) and outcomes[0].retry_after == 7
    assert list(outcomes[1]["results"]) == list(TASKS)
