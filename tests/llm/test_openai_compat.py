"""The OpenAI-compatible backend against a real local HTTP server that speaks the protocol."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from structlog.testing import capture_logs

from config import Settings
from processors.base import ConfigError, PermanentError, TransientError
from processors.llm.openai_compat import parse_retry_after
from processors.llm.processor import LLMAnalysisProcessor
from tests.llm.support import TRANSCRIPT, FakeOpenAIServer, Reply, completion, make_context

KEY = "sk-test-not-a-real-key-7731"
TASKS = {"summary": "Provide a brief summary", "decisions": "List key decisions"}


def run(settings: Settings, **params: object) -> dict:
    processor = LLMAnalysisProcessor(settings)
    processor.load("cpu")
    try:
        values = {"transcript": TRANSCRIPT, "tasks": TASKS, **params}
        return processor.process(processor.Params(**values), make_context(settings))
    finally:
        processor.close()


def test_result_has_answers_by_task_and_usage_from_the_response(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = lambda body: Reply(200, completion("fine", 100, 20))
    result = run(openai_settings())
    assert result["results"] == {"summary": "fine", "decisions": "fine"}
    meta = result["metadata"]
    assert (meta["provider"], meta["model"]) == ("openai", "test-model")
    assert meta["usage"]["tasks"]["summary"] == {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 120,
        "calls": 1,
    }
    assert meta["usage"]["prompt_tokens"] == 200
    assert meta["usage"]["completion_tokens"] == 40
    assert meta["usage"]["total_tokens"] == 240
    assert meta["latency_s"] >= 0


def test_each_task_is_one_chat_completion_request(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    result = run(openai_settings(), max_new_tokens=33, temperature=0.5)
    assert len(llm_server.requests) == 2
    for request in llm_server.requests:
        body = request["body"]
        assert body["model"] == "test-model"
        assert (body["max_tokens"], body["temperature"]) == (33, 0.5)
        assert body["messages"][0] == {
            "role": "system",
            "content": "You are an expert analyst of meeting transcripts. Answer accurately "
            "and concisely, using only what the transcript says.",
        }
        assert TRANSCRIPT in body["messages"][1]["content"]
        assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert result["results"] == {
        "summary": "answer to: Provide a brief summary",
        "decisions": "answer to: List key decisions",
    }


def test_job_model_overrides_the_configured_model(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    result = run(openai_settings(), model="other-model")
    assert {r["body"]["model"] for r in llm_server.requests} == {"other-model"}
    assert result["metadata"]["model"] == "other-model"


def test_tasks_are_sent_concurrently(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = lambda body: Reply(200, completion("ok"), delay=0.3)
    tasks = {f"t{i}": f"Question {i}" for i in range(4)}
    run(openai_settings(concurrency=4), tasks=tasks)
    assert llm_server.max_in_flight > 1


def test_cost_comes_from_the_price_table(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = lambda body: Reply(200, completion("ok", 1000, 500))
    result = run(openai_settings(prices={"test-model": (2.0, 10.0)}))
    # 2 tasks x (1000 prompt tokens at $2/M + 500 completion tokens at $10/M)
    assert result["metadata"]["cost"] == pytest.approx(2 * (0.002 + 0.005))
    assert result["metadata"]["priced"] is True


def test_model_missing_from_price_table_costs_zero_and_says_so(
    openai_settings: Callable[..., Settings],
) -> None:
    result = run(openai_settings(prices={"another": (1.0, 1.0)}))
    assert (result["metadata"]["cost"], result["metadata"]["priced"]) == (0.0, False)


def test_rate_limited_response_is_transient_with_retry_after(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = lambda body: Reply(
        429, {"error": {"message": "slow down"}}, {"Retry-After": "7"}
    )
    with pytest.raises(TransientError, match=r"429.*slow down") as caught:
        run(openai_settings())
    assert caught.value.retry_after == 7.0


def test_retry_after_may_be_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    assert parse_retry_after(format_datetime(when, usegmt=True)) == pytest.approx(120, abs=3)
    assert parse_retry_after("soon") is None


def test_server_error_is_transient(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = lambda body: Reply(500, b"Internal Server Error")
    with pytest.raises(TransientError, match="HTTP 500") as caught:
        run(openai_settings())
    assert caught.value.retry_after is None


def test_bad_request_is_permanent(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = lambda body: Reply(
        400, {"error": {"message": "maximum context length is 2048 tokens"}}
    )
    with pytest.raises(PermanentError, match=r"HTTP 400.*maximum context length"):
        run(openai_settings())


def test_permanent_failure_wins_over_transient_ones(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.script = [Reply(503, b"busy"), Reply(404, {"error": {"message": "no model"}})]
    with pytest.raises(PermanentError, match="no model"):
        run(openai_settings())


@pytest.mark.parametrize(
    "body",
    [b"<html>gateway hiccup</html>", b'{"choices": []}', b'{"object": "chat.completion"}'],
    ids=["not-json", "no-choices", "no-message"],
)
def test_malformed_body_is_transient(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer, body: bytes
) -> None:
    # Decided: a 2xx body that is not a chat completion is usually a proxy or a restarting
    # server; the worker's bounded retries are the right answer (see docs/llm.md).
    llm_server.responder = lambda request: Reply(200, body)
    with pytest.raises(TransientError, match="malformed chat completion"):
        run(openai_settings())


def test_timeout_is_transient(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = lambda body: Reply(200, completion("late"), delay=1.5)
    with pytest.raises(TransientError, match="timed out"):
        run(openai_settings(request_timeout=0.2))


def test_unreachable_server_is_transient(openai_settings: Callable[..., Settings]) -> None:
    with pytest.raises(TransientError, match="cannot reach"):
        run(openai_settings(base_url="http://127.0.0.1:9/v1"))


def test_api_key_never_logged(
    openai_settings: Callable[..., Settings],
    llm_server: FakeOpenAIServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A hostile or careless server echoing the Authorization header back in its error.
    llm_server.script = [Reply(200, completion("ok"))] * 2
    llm_server.responder = lambda body: Reply(401, {"error": {"message": f"bad key Bearer {KEY}"}})
    settings = openai_settings()
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        result = run(settings)
        with pytest.raises(PermanentError) as caught:
            run(settings)
    seen = " ".join([str(result), repr(logs), caplog.text, str(caught.value), repr(caught.value)])
    assert "[redacted]" in str(caught.value)
    assert KEY not in seen
    assert KEY not in repr(settings.llm)
    assert any(entry["event"] == "llm analysis done" for entry in logs)


def test_openai_backend_needs_a_model_name(openai_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="LLM_MODEL"):
        LLMAnalysisProcessor.check_config(openai_settings(model=None))


def test_schema_answer_is_repaired_once(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.script = [
        Reply(200, completion("Sure! The actions are: email customers")),
        Reply(200, completion('```json\n["email customers"]\n```')),
    ]
    schema = {"type": "array", "items": {"type": "string"}}
    result = run(openai_settings(), tasks={"actions": {"prompt": "List actions", "schema": schema}})
    assert result["results"] == {"actions": ["email customers"]}
    repair = llm_server.requests[1]["body"]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Sure! The actions are: email customers"}
    assert "not valid" in repair[-1]["content"]
    assert result["metadata"]["usage"]["tasks"]["actions"]["calls"] == 2


def test_schema_answer_repaired_once_then_permanent_error(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    llm_server.responder = lambda body: Reply(200, completion('{"count": "three"}'))
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    with pytest.raises(PermanentError, match=r"task 'tally'.*count"):
        run(openai_settings(), tasks={"tally": {"prompt": "Count", "schema": schema}})
    assert len(llm_server.requests) == 2


def test_long_transcript_is_map_reduced_when_a_window_is_configured(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    transcript = "\n".join(f"SPEAKER_0{i % 2}: point number {i} of the meeting" for i in range(200))
    result = run(
        openai_settings(context_tokens=800, max_new_tokens=64),
        transcript=transcript,
        tasks={"summary": "Summarize"},
    )
    chunks = result["metadata"]["chunks"]
    assert chunks > 1
    bodies = [r["body"]["messages"][-1]["content"] for r in llm_server.requests]
    maps = [b for b in bodies if b.startswith("Here is part")]
    reduces = [b for b in bodies if b.startswith("A long transcript was read")]
    assert len(maps) == chunks
    assert reduces and all("Answer for part 1:" in b for b in reduces)
    parts = sorted(maps, key=lambda b: int(b.split()[3]))
    assert [int(b.split()[3]) for b in parts] == list(range(1, chunks + 1))
    assert "\n".join(b.split('"""\n', 1)[1].rsplit('\n"""', 1)[0] for b in parts) == transcript


def test_negative_price_is_config_error(openai_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="negative"):
        LLMAnalysisProcessor.check_config(openai_settings(prices={"test-model": (-1.0, 1.0)}))
