"""The local backend with the real shipped model (SmolLM2-135M-Instruct, greedy decoding).

Assertions cover structure, token counts and determinism, never the wording."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from processors.base import ConfigError, PermanentError
from processors.llm import prompts
from processors.llm.local import converted_cache_path, default_gguf_path
from processors.llm.params import DEFAULT_SYSTEM_PROMPT
from processors.llm.processor import LLMAnalysisProcessor
from tests.llm.support import TRANSCRIPT, make_context

TASKS = {
    "summary": "Provide a brief summary",
    "decisions": "List key decisions",
    "actions": "List the action items with their owners",
}

pytestmark = pytest.mark.slow


def analyze(processor: LLMAnalysisProcessor, **params: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"transcript": TRANSCRIPT, "tasks": TASKS, **params}
    return processor.process(processor.Params(**values), make_context(processor.settings))


def spy_generate(processor: LLMAnalysisProcessor, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record the inputs of every real `model.generate` call (the call still runs)."""
    model = processor.backend.model  # type: ignore[union-attr]
    real = model.generate
    calls: list[Any] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append({k: kwargs[k].clone() for k in ("input_ids", "attention_mask")})
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", recording)
    return calls


@pytest.fixture(scope="module")
def baseline(local_processor: LLMAnalysisProcessor) -> dict[str, Any]:
    return analyze(local_processor)


@pytest.fixture
def load_processor() -> Callable[[Settings], LLMAnalysisProcessor]:
    """Load extra processors (from the session's cache) and free them after the test."""
    loaded: list[LLMAnalysisProcessor] = []

    def load(settings: Settings) -> LLMAnalysisProcessor:
        processor = LLMAnalysisProcessor(settings)
        processor.load("cpu")
        processor.load_backend()
        loaded.append(processor)
        return processor

    yield load  # type: ignore[misc]
    loaded.clear()


def test_result_has_the_shape_producers_read(baseline: dict[str, Any]) -> None:
    assert list(baseline["results"]) == list(TASKS)
    assert all(isinstance(answer, str) and answer for answer in baseline["results"].values())
    meta = baseline["metadata"]
    assert (meta["provider"], meta["model"]) == ("local", "SmolLM2-135M-Instruct")
    assert (meta["cost"], meta["chunks"], meta["calls"]) == (0.0, 1, len(TASKS))
    assert set(meta["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "tasks"}
    assert list(meta["usage"]["tasks"]) == list(TASKS)
    assert meta["latency_s"] > 0


def test_all_tasks_run_in_one_batched_generate(
    local_processor: LLMAnalysisProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_generate(local_processor, monkeypatch)
    analyze(local_processor)
    assert len(calls) == 1
    mask = calls[0]["attention_mask"]
    assert mask.shape[0] == len(TASKS)
    # Every row ends on a real token (padding goes before a row's own tokens), and the
    # shorter prompts are padded.
    assert mask[:, -1].all()
    assert (mask.sum(dim=1) < mask.shape[1]).any()


def test_batched_answers_match_one_by_one(
    local_processor: LLMAnalysisProcessor, baseline: dict[str, Any]
) -> None:
    # The shared transcript prefix is computed once for the batch; padding and positions
    # must leave every row's greedy answer exactly as it is when run alone.
    for name, prompt in TASKS.items():
        alone = analyze(local_processor, tasks={name: prompt})
        assert alone["results"][name] == baseline["results"][name]
        assert (
            alone["metadata"]["usage"]["tasks"][name]
            == baseline["metadata"]["usage"]["tasks"][name]
        )


def test_greedy_results_are_deterministic(
    local_processor: LLMAnalysisProcessor, baseline: dict[str, Any]
) -> None:
    again = analyze(local_processor)
    assert again["results"] == baseline["results"]
    assert again["metadata"]["usage"] == baseline["metadata"]["usage"]


def test_usage_counts_match_tokenizer(
    local_processor: LLMAnalysisProcessor, baseline: dict[str, Any]
) -> None:
    tokenizer = local_processor.backend.tokenizer  # type: ignore[union-attr]
    usage = baseline["metadata"]["usage"]
    for name, prompt in TASKS.items():
        conversation = prompts.single_pass(DEFAULT_SYSTEM_PROMPT, TRANSCRIPT, prompt, None)
        expected = tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        task = usage["tasks"][name]
        assert task["prompt_tokens"] == len(expected)
        assert 0 < task["completion_tokens"] <= local_processor.settings.llm.max_new_tokens
        assert task["total_tokens"] == task["prompt_tokens"] + task["completion_tokens"]
    tasks = usage["tasks"].values()
    assert usage["prompt_tokens"] == sum(t["prompt_tokens"] for t in tasks)
    assert usage["completion_tokens"] == sum(t["completion_tokens"] for t in tasks)


def test_max_new_tokens_bounds_every_answer(local_processor: LLMAnalysisProcessor) -> None:
    result = analyze(local_processor, max_new_tokens=3)
    for task in result["metadata"]["usage"]["tasks"].values():
        assert 0 < task["completion_tokens"] <= 3
    assert result["metadata"]["max_new_tokens"] == 3


def test_long_transcript_is_map_reduced(
    local_settings_factory: Callable[..., Settings],
    load_processor: Callable[[Settings], LLMAnalysisProcessor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context = 512
    processor = load_processor(local_settings_factory(context_tokens=context))
    calls = spy_generate(processor, monkeypatch)
    long_transcript = "\n".join([TRANSCRIPT] * 8)
    tasks = {"summary": "Provide a brief summary", "decisions": "List key decisions"}
    result = analyze(processor, transcript=long_transcript, tasks=tasks)
    chunks = result["metadata"]["chunks"]
    assert chunks >= 2
    # Round 1: every (task, chunk) pair in one batch; round 2: one combining prompt per task.
    assert [call["input_ids"].shape[0] for call in calls] == [2 * chunks, 2]
    assert result["metadata"]["calls"] == 2 * chunks + 2
    budget = context - processor.settings.llm.max_new_tokens
    assert all(call["attention_mask"].sum(dim=1).max() <= budget for call in calls)
    assert all(isinstance(a, str) and a for a in result["results"].values())


def test_converted_weights_are_cached_as_safetensors(
    local_processor: LLMAnalysisProcessor,
    local_settings_factory: Callable[..., Settings],
    load_processor: Callable[[Settings], LLMAnalysisProcessor],
    model_cache: Path,
    baseline: dict[str, Any],
) -> None:
    folder = converted_cache_path(model_cache, default_gguf_path())
    assert (folder / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert not list(folder.glob("*.gguf"))
    again = load_processor(local_settings_factory())
    assert again.backend.loaded_from == "cache"  # type: ignore[union-attr]
    assert analyze(again)["results"] == baseline["results"]


def test_configured_model_folder_loads_the_same_way(
    local_settings_factory: Callable[..., Settings],
    load_processor: Callable[[Settings], LLMAnalysisProcessor],
    model_cache: Path,
    baseline: dict[str, Any],
) -> None:
    # The converted cache entry is an ordinary Hugging Face model folder.
    folder = converted_cache_path(model_cache, default_gguf_path())
    processor = load_processor(local_settings_factory(model=str(folder)))
    assert processor.backend.loaded_from == "folder"  # type: ignore[union-attr]
    result = analyze(processor)
    assert result["metadata"]["model"] == folder.name
    assert result["results"] == baseline["results"]


def test_schema_answer_repaired_once_then_permanent_error(
    local_processor: LLMAnalysisProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_generate(local_processor, monkeypatch)
    unsatisfiable = {"not": {}}  # a valid schema that no JSON value matches
    with pytest.raises(PermanentError, match=r"task 'owners'.*after one repair attempt"):
        analyze(
            local_processor, tasks={"owners": {"prompt": "List owners", "schema": unsatisfiable}}
        )
    assert len(calls) == 2
    repair_row = calls[1]["attention_mask"].sum(dim=1).item()
    assert repair_row > calls[0]["attention_mask"].sum(dim=1).item()


def test_missing_model_folder_is_config_error(
    local_settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="never downloaded"):
        LLMAnalysisProcessor.check_config(local_settings_factory(model=str(tmp_path / "nope")))


def test_job_naming_a_missing_model_is_permanent_error(
    local_processor: LLMAnalysisProcessor, tmp_path: Path
) -> None:
    with pytest.raises(PermanentError, match="not a model folder"):
        analyze(local_processor, model=str(tmp_path / "nope"))
