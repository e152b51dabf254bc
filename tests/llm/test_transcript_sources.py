"""Where the transcript comes from: inline text, a file under the media root, or another
job's result (`from_job`). Checked through the OpenAI-compatible backend, whose requests
show exactly what the model was given."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from config import Settings
from processors.base import PermanentError, StopRequested
from processors.llm.processor import LLMAnalysisProcessor
from tests.llm.support import FakeOpenAIServer, make_context


def run(
    settings: Settings,
    jobs: dict[str, dict[str, Any]] | None = None,
    *,
    stop: bool = False,
    **params: Any,
) -> dict:
    processor = LLMAnalysisProcessor(settings)
    processor.load("cpu")
    try:
        parsed = processor.Params(tasks={"summary": "Summarize"}, **params)
        return processor.process(parsed, make_context(settings, jobs, stop=stop))
    finally:
        processor.close()


def prompt_sent(server: FakeOpenAIServer) -> str:
    return server.requests[-1]["body"]["messages"][-1]["content"]


def test_from_job_uses_transcript_of_that_job(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    jobs = {"tr-1": {"text": "ALICE: we ship on Friday.", "segments": [], "language": "en"}}
    run(openai_settings(), jobs, from_job="tr-1")
    assert '"""\nALICE: we ship on Friday.\n"""' in prompt_sent(llm_server)


def test_from_job_without_text_joins_diarized_segments(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    segments = [
        {"start": 0.0, "end": 1.2, "speaker": "SPEAKER_00", "text": " Hello there."},
        {"start": 1.3, "end": 2.0, "speaker": "SPEAKER_01", "text": "Hi!"},
        {"start": 2.1, "end": 2.5, "text": "(laughter)"},
    ]
    run(openai_settings(), {"dia-1": {"segments": segments}}, transcript={"from_job": "dia-1"})
    assert "SPEAKER_00: Hello there.\nSPEAKER_01: Hi!\n(laughter)" in prompt_sent(llm_server)


def test_unknown_from_job_is_permanent_error(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    with pytest.raises(PermanentError, match="'nope' is unknown or has not finished"):
        run(openai_settings(), {}, from_job="nope")
    assert llm_server.requests == []


def test_from_job_with_no_transcript_is_permanent_error(
    openai_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(PermanentError, match="no transcript"):
        run(openai_settings(), {"v-1": {"frames": 10}}, from_job="v-1")


def test_transcript_file_under_the_media_root_is_read(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    settings = openai_settings()
    (settings.media_root / "calls").mkdir()
    (settings.media_root / "calls" / "standup.txt").write_text("BOB: deploy at noon.\n")
    run(settings, transcript_path="calls/standup.txt")
    assert "BOB: deploy at noon." in prompt_sent(llm_server)


def test_json_transcript_file_is_read_like_a_job_result(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    settings = openai_settings()
    result = {"segments": [{"start": 0, "end": 1, "speaker": "SPEAKER_02", "text": "Done."}]}
    (settings.media_root / "t.json").write_text(json.dumps(result))
    run(settings, transcript={"path": "t.json"})
    assert "SPEAKER_02: Done." in prompt_sent(llm_server)


def test_transcript_file_outside_the_media_root_is_permanent_error(
    openai_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(PermanentError, match="outside the media root"):
        run(openai_settings(), transcript_path="/etc/hostname")


def test_empty_transcript_is_permanent_error(openai_settings: Callable[..., Settings]) -> None:
    with pytest.raises(PermanentError, match="empty"):
        run(openai_settings(), transcript="   \n")


def test_stop_request_is_honoured_before_any_request(
    openai_settings: Callable[..., Settings], llm_server: FakeOpenAIServer
) -> None:
    with pytest.raises(StopRequested):
        run(openai_settings(), stop=True, transcript="hello")
    assert llm_server.requests == []
