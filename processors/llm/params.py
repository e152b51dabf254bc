"""Job parameters of `llm_analysis`."""

from __future__ import annotations

from typing import Any

from jsonschema import SchemaError, validators
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from processors.base import Params

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert analyst of meeting transcripts. Answer accurately and concisely, "
    "using only what the transcript says."
)
MAX_TASKS = 64


class TaskSpec(BaseModel):
    """One named question about the transcript, optionally with a JSON Schema for its answer."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    task_name: str = Field(min_length=1, max_length=200)
    prompt: str = Field(min_length=1)
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    """When set, the answer must be JSON that validates against it; the result holds the
    parsed value instead of text."""

    @field_validator("json_schema")
    @classmethod
    def _schema_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                validators.validator_for(value).check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"invalid JSON Schema: {exc.message}") from None
        return value


class LLMAnalysisParams(Params):
    """`transcript` (text), `transcript_path` (a file under the media root) or `from_job`
    (the id of a finished transcription/diarization job): exactly one of them.

    `transcript` may also be an object `{"path": ...}` or `{"from_job": ...}`.
    `tasks` is a dict `{name: prompt}` (a value may also be `{"prompt", "schema"}`) or a
    list of `{"task_name", "prompt", "schema"?}`.
    """

    transcript: str | None = None
    transcript_path: str | None = None
    from_job: str | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_TASKS)
    model: str | None = None
    """Overrides the configured model (local: a model folder; openai: the model name)."""
    max_new_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    all_or_nothing: bool = False
    """Fail the job when any task has no valid answer (default: only when every task
    fails; the others keep their answers and the failures are listed in `errors`)."""

    @model_validator(mode="before")
    @classmethod
    def _lift_transcript_object(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("transcript"), dict):
            data = dict(data)
            ref = data.pop("transcript")
            unknown = set(ref) - {"text", "path", "from_job"}
            if unknown or len(ref) != 1:
                raise ValueError(
                    "transcript as an object takes exactly one of 'text', 'path', 'from_job'"
                )
            key, value = next(iter(ref.items()))
            target = {"text": "transcript", "path": "transcript_path", "from_job": "from_job"}[key]
            if data.get(target) is not None:
                raise ValueError(f"{target} is given twice")
            data[target] = value
        return data

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_from_dict(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return [
                {"task_name": name, "prompt": spec}
                if isinstance(spec, str)
                else {"task_name": name, **spec}
                if isinstance(spec, dict)
                else spec
                for name, spec in value.items()
            ]
        return value

    @field_validator("tasks")
    @classmethod
    def _unique_task_names(cls, value: list[TaskSpec]) -> list[TaskSpec]:
        names = [task.task_name for task in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate task names: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _one_transcript_source(self) -> LLMAnalysisParams:
        given = [
            name
            for name in ("transcript", "transcript_path", "from_job")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of transcript, transcript_path, from_job"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self
