"""The job parameters: transcript sources, task forms, schemas."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from processors.llm.params import DEFAULT_SYSTEM_PROMPT, LLMAnalysisParams


def test_tasks_as_dict_and_as_list_mean_the_same() -> None:
    as_dict = LLMAnalysisParams(transcript="t", tasks={"summary": "Summarize", "decisions": "List"})
    as_list = LLMAnalysisParams(
        transcript="t",
        tasks=[
            {"task_name": "summary", "prompt": "Summarize"},
            {"task_name": "decisions", "prompt": "List"},
        ],
    )
    assert as_dict.tasks == as_list.tasks
    assert [t.task_name for t in as_dict.tasks] == ["summary", "decisions"]


def test_task_in_dict_form_may_carry_a_schema() -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    params = LLMAnalysisParams(
        transcript="t", tasks={"actions": {"prompt": "List actions", "schema": schema}}
    )
    assert params.tasks[0].json_schema == schema


def test_invalid_json_schema_is_rejected() -> None:
    with pytest.raises(ValidationError, match="invalid JSON Schema"):
        LLMAnalysisParams(transcript="t", tasks={"x": {"prompt": "p", "schema": {"type": 12}}})


def test_duplicate_task_names_are_rejected() -> None:
    with pytest.raises(ValidationError, match="duplicate task names: a"):
        LLMAnalysisParams(
            transcript="t",
            tasks=[{"task_name": "a", "prompt": "p"}, {"task_name": "a", "prompt": "q"}],
        )


def test_at_least_one_task_is_required() -> None:
    with pytest.raises(ValidationError):
        LLMAnalysisParams(transcript="t", tasks={})


@pytest.mark.parametrize(
    "sources",
    [{}, {"transcript": "t", "from_job": "j1"}, {"transcript_path": "a.txt", "from_job": "j"}],
)
def test_exactly_one_transcript_source_is_required(sources: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="exactly one of transcript"):
        LLMAnalysisParams(tasks={"s": "Summarize"}, **sources)


def test_transcript_object_names_a_file_or_a_job() -> None:
    by_path = LLMAnalysisParams(transcript={"path": "m/a.txt"}, tasks={"s": "p"})
    by_job = LLMAnalysisParams(transcript={"from_job": "job-9"}, tasks={"s": "p"})
    assert (by_path.transcript, by_path.transcript_path) == (None, "m/a.txt")
    assert (by_job.transcript, by_job.from_job) == (None, "job-9")


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        LLMAnalysisParams(transcript="t", tasks={"s": "p"}, top_k=5)


def test_defaults_leave_generation_settings_to_config() -> None:
    params = LLMAnalysisParams(transcript="t", tasks={"s": "p"})
    assert params.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert (params.model, params.max_new_tokens, params.temperature) == (None, None, None)
