"""An llm_analysis job through the worker, reading the transcript of an earlier job."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Env

pytestmark = [pytest.mark.integration, pytest.mark.slow]
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]


def test_llm_job_analyses_the_transcript_of_a_finished_job(make_env: Callable[..., Env]) -> None:
    env = make_env(LLM_CACHE_DIR=str(ROOT / "var" / "models"), LLM_MAX_NEW_TOKENS="12")
    env.redis_cli(
        "LPUSH",
        "stoker:queue:default",
        '{"id": "meeting", "processor": "echo",'
        ' "params": {"text": "ALICE: We ship on Friday. BOB: I will write the notes."}}',
    )
    env.redis_cli(
        "LPUSH",
        "stoker:queue:default",
        json.dumps(
            {
                "id": "analysis",
                "processor": "llm_analysis",
                "params": {
                    "from_job": "meeting",
                    "system_prompt": "You are an expert meeting analyst.",
                    "tasks": {
                        "summary": "Provide a brief summary",
                        "decisions": "List key decisions",
                    },
                },
            }
        ),
    )
    env.cli("run", "--burst", timeout=600)
    row = env.row("analysis")
    assert row is not None and row["status"] == "succeeded", row
    result = row["result"]
    assert set(result["results"]) == {"summary", "decisions"}
    assert all(isinstance(v, str) and v for v in result["results"].values())
    meta = result["metadata"]
    assert meta["provider"] and meta["model"] and meta["cost"] == 0
    assert meta["usage"]["completion_tokens"] > 0
