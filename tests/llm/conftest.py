"""Fixtures for the LLM processor: the shipped model loaded once per session, and a fake
OpenAI-compatible server per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config import LLMSettings, Settings
from tests.llm.support import FakeOpenAIServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # On a shared 2-core machine a second torch thread fights other work and can make
    # generation far slower; one thread is steady.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Where converted weights go: `STOKER_LLM_TEST_CACHE` when set, else the configured
    default `var/models` of the checkout, so that only the first run of a CI job pays for
    de-quantizing the GGUF file."""
    configured = os.environ.get("STOKER_LLM_TEST_CACHE")
    return Path(configured) if configured else ROOT / "var" / "models"


@pytest.fixture(scope="session")
def local_settings_factory(
    model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    media = tmp_path_factory.mktemp("media")

    def make(**llm: Any) -> Settings:
        values: dict[str, Any] = {
            "cache_dir": model_cache,
            "max_new_tokens": 16,
            "temperature": 0.0,
            **llm,
        }
        return Settings(media_root=media, llm=LLMSettings(**values))

    return make


@pytest.fixture(scope="session")
def local_processor(local_settings_factory: Callable[..., Settings]) -> Any:
    """The shipped SmolLM2-135M-Instruct, loaded once for the whole session."""
    from processors.llm.processor import LLMAnalysisProcessor

    processor = LLMAnalysisProcessor(local_settings_factory())
    processor.load("cpu")
    processor.load_backend()
    return processor


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture
def openai_settings(
    llm_server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Settings for the OpenAI-compatible backend pointed at `llm_server`."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("LLM_API_KEY", raising=False)

    def make(**llm: Any) -> Settings:
        values: dict[str, Any] = {
            "backend": "openai",
            "base_url": llm_server.url,
            "model": "test-model",
            "LLM_API_KEY": "sk-test-not-a-real-key-7731",
            "request_timeout": 5.0,
            **llm,
        }
        return Settings(media_root=tmp_path, llm=LLMSettings(**values))

    return make
