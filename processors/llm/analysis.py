"""Running a job's tasks on a backend: one batched pass when the transcript fits the
context window, map-reduce over chunks when it does not, then JSON Schema checks with
one repair attempt. Token usage is counted per task. A run is a series of rounds
(`Analyzer.steps`), so that the rounds of several jobs can share one batched call.

A task whose answer still does not match its schema after the repair is reported on its
own (`Analysis.errors`: the reason and what the model wrote, both times); the other tasks
keep their answers."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import best_match

from processors.base import PermanentError
from processors.llm import prompts
from processors.llm.backend import Backend, Completion
from processors.llm.params import TaskSpec
from processors.llm.prompts import Conversation

#: Tokens each "Answer for part N:" label and separator adds in a reduce prompt.
PART_OVERHEAD = 12
#: Smallest transcript chunk worth a model call.
MIN_CHUNK_TOKENS = 64


@dataclass
class TaskUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def add(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.calls += 1

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "calls": self.calls,
        }


@dataclass
class Analysis:
    """The answers (text, or parsed JSON for tasks with a schema) and what they cost."""

    results: dict[str, Any]
    usage: dict[str, TaskUsage]
    chunks: int
    rounds: list[int] = field(default_factory=list)
    """Sequences sent to the backend per round (each round is one batched `complete`)."""
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    """Tasks without a valid answer: {"error", "answer" (the model's first answer),
    "repaired" (its answer to the repair prompt)}; their `results` entry is None."""


#: A job's run as steps: each step yields the conversations of one round and is sent
#: their completions (in order); the run returns its `Analysis`. A single job drives it
#: alone (`Analyzer.run`); `processors.llm.batch` drives several jobs' rounds together.
Steps = Generator[list[Conversation], list[Completion], Analysis]


class Analyzer:
    """One job's run on one backend."""

    def __init__(
        self,
        backend: Backend,
        *,
        system_prompt: str,
        tasks: list[TaskSpec],
        max_new_tokens: int,
        temperature: float,
        progress: Callable[[float, str], None] = lambda fraction, stage: None,
        check_stop: Callable[[], None] = lambda: None,
    ) -> None:
        self.backend = backend
        self.system_prompt = system_prompt
        self.tasks = tasks
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.progress = progress
        self.check_stop = check_stop
        self.usage = {task.task_name: TaskUsage() for task in tasks}
        self.rounds: list[int] = []

    def run(self, transcript: str) -> Analysis:
        """The whole run on this analyzer's backend, one batched `complete` per round."""
        steps = self.steps(transcript)
        try:
            request = next(steps)
            while True:
                outs = self.backend.complete(
                    request,
                    max_new_tokens=self.max_new_tokens,
                    temperature=self.temperature,
                    check_stop=self.check_stop,
                )
                request = steps.send(outs)
        except StopIteration as done:
            return done.value

    def steps(self, transcript: str) -> Steps:
        """The run as rounds of conversations (see `Steps`)."""
        chunks = self.chunk(transcript)
        if len(chunks) == 1:
            self.progress(0.0, "generate")
            finals = {
                t.task_name: prompts.single_pass(
                    self.system_prompt, transcript, t.prompt, t.json_schema
                )
                for t in self.tasks
            }
            names = list(finals)
            outs = yield from self._ask([(name, finals[name]) for name in names])
            answers = {name: out.text for name, out in zip(names, outs, strict=True)}
        else:
            finals, answers = yield from self._map_reduce(chunks)
        results, errors = yield from self._check_schemas(finals, answers)
        self.progress(1.0, "done")
        return Analysis(
            results=results,
            usage=self.usage,
            chunks=len(chunks),
            rounds=self.rounds,
            errors=errors,
        )

    def chunk(self, transcript: str) -> list[str]:
        """The transcript whole when it fits the context window, else its chunks."""
        context = self.backend.context_tokens
        if not context:
            return [transcript]
        single_overhead = max(
            self.backend.count_prompt_tokens(
                prompts.single_pass(self.system_prompt, "", t.prompt, t.json_schema)
            )
            for t in self.tasks
        )
        if self.backend.count_tokens(transcript) <= context - self.max_new_tokens - single_overhead:
            return [transcript]
        map_overhead = max(
            self.backend.count_prompt_tokens(
                prompts.map_step(self.system_prompt, "", 999, 999, t.prompt)
            )
            for t in self.tasks
        )
        budget = context - self.max_new_tokens - map_overhead
        if budget < MIN_CHUNK_TOKENS or self._reduce_budget() < 2 * (
            self.max_new_tokens + PART_OVERHEAD
        ):
            raise PermanentError(
                f"the transcript needs map-reduce, but a context window of {context} tokens "
                f"leaves too little room with max_new_tokens={self.max_new_tokens} and these "
                "prompts; lower max_new_tokens or shorten the prompts"
            )
        return prompts.split_text(transcript, self.backend.count_tokens, budget)

    def _reduce_budget(self) -> int:
        context = self.backend.context_tokens or 0
        overhead = max(
            self.backend.count_prompt_tokens(
                prompts.reduce_step(self.system_prompt, [], t.prompt, t.json_schema)
            )
            for t in self.tasks
        )
        return context - self.max_new_tokens - overhead

    def _ask(
        self, items: list[tuple[str, Conversation]]
    ) -> Generator[list[Conversation], list[Completion], list[Completion]]:
        """One round: yield the conversations, count what their completions cost."""
        self.check_stop()
        outs = yield [conversation for _, conversation in items]
        if len(outs) != len(items):
            raise RuntimeError(f"{len(outs)} completions for {len(items)} conversations")
        self.rounds.append(len(items))
        for (name, _), out in zip(items, outs, strict=True):
            self.usage[name].add(out)
        return outs

    def _map_reduce(
        self, chunks: list[str]
    ) -> Generator[
        list[Conversation], list[Completion], tuple[dict[str, Conversation], dict[str, str]]
    ]:
        """Every (task, chunk) pair in one batched round, then reduce rounds (all tasks
        together) until each task's partial answers fit one final prompt."""
        self.progress(0.0, "map")
        total = len(chunks)
        items = [
            (t.task_name, prompts.map_step(self.system_prompt, chunk, i, total, t.prompt))
            for t in self.tasks
            for i, chunk in enumerate(chunks, 1)
        ]
        outs = yield from self._ask(items)
        pending: dict[str, list[str]] = {t.task_name: [] for t in self.tasks}
        for (name, _), out in zip(items, outs, strict=True):
            pending[name].append(out.text)
        by_name = {t.task_name: t for t in self.tasks}
        budget = self._reduce_budget()
        finals: dict[str, Conversation] = {}
        answers: dict[str, str] = {}
        while pending:
            self.progress(0.5, "reduce")
            items, final_names = [], []
            for name, parts in pending.items():
                task = by_name[name]
                groups = self._groups(parts, budget)
                if len(groups) == 1:
                    final_names.append(name)
                    conversation = prompts.reduce_step(
                        self.system_prompt, parts, task.prompt, task.json_schema
                    )
                    finals[name] = conversation
                    items.append((name, conversation))
                else:
                    items += [
                        (name, prompts.reduce_step(self.system_prompt, group, task.prompt, None))
                        for group in groups
                    ]
            outs = yield from self._ask(items)
            next_pending: dict[str, list[str]] = {}
            for (name, _), out in zip(items, outs, strict=True):
                if name in final_names:
                    answers[name] = out.text
                else:
                    next_pending.setdefault(name, []).append(out.text)
            pending = next_pending
        return finals, answers

    def _groups(self, parts: list[str], budget: int) -> list[list[str]]:
        groups: list[list[str]] = []
        current: list[str] = []
        used = 0
        for part in parts:
            tokens = self.backend.count_tokens(part) + PART_OVERHEAD
            if current and used + tokens > budget:
                groups.append(current)
                current, used = [], 0
            current.append(part)
            used += tokens
        if current:
            groups.append(current)
        return groups

    def _check_schemas(
        self, finals: dict[str, Conversation], answers: dict[str, str]
    ) -> Generator[
        list[Conversation], list[Completion], tuple[dict[str, Any], dict[str, dict[str, str]]]
    ]:
        results: dict[str, Any] = {}
        errors: dict[str, dict[str, str]] = {}
        failed: list[tuple[TaskSpec, str]] = []
        for task in self.tasks:
            answer = answers[task.task_name]
            if task.json_schema is None:
                results[task.task_name] = answer
                continue
            value, error = parse_and_validate(answer, task.json_schema)
            if error is None:
                results[task.task_name] = value
            else:
                failed.append((task, error))
        if failed:
            self.progress(0.9, "repair")
            items = [
                (t.task_name, prompts.repair_step(finals[t.task_name], answers[t.task_name], err))
                for t, err in failed
            ]
            outs = yield from self._ask(items)
            for (task, _), out in zip(failed, outs, strict=True):
                value, error = parse_and_validate(out.text, task.json_schema or {})
                if error is not None:
                    errors[task.task_name] = {
                        "error": f"the answer does not match its JSON schema after one "
                        f"repair attempt: {error}",
                        "answer": answers[task.task_name],
                        "repaired": out.text,
                    }
                results[task.task_name] = value
        return {task.task_name: results.get(task.task_name) for task in self.tasks}, errors


def parse_and_validate(answer: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """(value, None) when `answer` holds JSON valid against `schema`, else (None, why)."""
    try:
        value = prompts.extract_json(answer)
    except ValueError as exc:
        return None, str(exc)
    validator = validators.validator_for(schema)(schema)
    error = best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return None, f"at {where}: {error.message[:200]}"
    return value, None
