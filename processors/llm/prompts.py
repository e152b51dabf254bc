"""Chat messages for each stage (single pass, map, reduce, repair), transcript chunking,
and pulling JSON out of a model's answer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

Message = dict[str, str]
Conversation = list[Message]

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def schema_instruction(schema: dict[str, Any] | None) -> str:
    if schema is None:
        return ""
    return (
        "\n\nReply with only a JSON value that validates against this JSON Schema, "
        "with no other text:\n" + json.dumps(schema, separators=(",", ":"))
    )


def single_pass(
    system_prompt: str, transcript: str, prompt: str, schema: dict[str, Any] | None
) -> Conversation:
    """The whole transcript and one task."""
    user = f'Transcript:\n"""\n{transcript}\n"""\n\n{prompt}{schema_instruction(schema)}'
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def map_step(system_prompt: str, chunk: str, index: int, total: int, prompt: str) -> Conversation:
    """One chunk of a long transcript and one task; answered as free text."""
    user = (
        f'Here is part {index} of {total} of a transcript:\n"""\n{chunk}\n"""\n\n{prompt}\n'
        "Answer from this part only; if it holds nothing relevant, say so in one sentence."
    )
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def reduce_step(
    system_prompt: str, partials: list[str], prompt: str, schema: dict[str, Any] | None
) -> Conversation:
    """Combine the answers given for consecutive parts of a transcript into one."""
    parts = "\n\n".join(f"Answer for part {i}:\n{text}" for i, text in enumerate(partials, 1))
    user = (
        f"A long transcript was read in {len(partials)} consecutive parts and this task was "
        f"answered for each part.\n\nTask: {prompt}\n\n{parts}\n\n"
        f"Combine these answers into one answer to the task for the whole transcript."
        f"{schema_instruction(schema)}"
    )
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def repair_step(conversation: Conversation, answer: str, error: str) -> Conversation:
    """Ask once more after an answer that did not parse or validate."""
    return [
        *conversation,
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": f"That reply is not valid: {error}\n"
            "Reply again with only the corrected JSON, nothing else.",
        },
    ]


def split_text(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> list[str]:
    """Split `text` into consecutive chunks of at most `max_tokens` tokens each.

    Cuts fall between lines where possible, then between words, then inside a word.
    Pieces are counted once each (plus one token per separator) rather than re-counting
    the growing chunk, which keeps this linear in the transcript's length.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    pieces: list[tuple[str, str, int]] = []  # (separator before, text, tokens)
    for line in text.splitlines():
        tokens = count_tokens(line)
        if tokens <= max_tokens:
            pieces.append(("\n", line, tokens))
            continue
        separator = "\n"
        for word in line.split(" "):
            for part in _split_word(word, count_tokens, max_tokens):
                pieces.append((separator, part, count_tokens(part)))
                separator = ""
            separator = " "
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for separator, piece, tokens in pieces:
        if current and used + 1 + tokens > max_tokens:
            chunks.append("".join(current).strip("\n"))
            current, used = [], 0
        current.append((separator if current else "") + piece)
        used += tokens + (1 if len(current) > 1 else 0)
    if current:
        chunks.append("".join(current).strip("\n"))
    return [chunk for chunk in chunks if chunk.strip()]


def _split_word(word: str, count_tokens: Callable[[str], int], max_tokens: int) -> list[str]:
    if count_tokens(word) <= max_tokens:
        return [word]
    out: list[str] = []
    start = 0
    while start < len(word):
        end = len(word)
        while end - start > 1 and count_tokens(word[start:end]) > max_tokens:
            end = start + (end - start) // 2
        out.append(word[start:end])
        start = end
    return out


def pack(items: list[str], count_tokens: Callable[[str], int], max_tokens: int) -> list[list[str]]:
    """Group consecutive items so each group's joined text fits `max_tokens` (one item at least)."""
    groups: list[list[str]] = []
    current: list[str] = []
    for item in items:
        if current and count_tokens("\n\n".join([*current, item])) > max_tokens:
            groups.append(current)
            current = []
        current.append(item)
    if current:
        groups.append(current)
    return groups


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer: the whole text, a ``` fenced block, or the
    outermost {...} / [...] span. Raises ValueError when there is none."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    last_error = "no JSON value found"
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as exc:
            last_error = f"not valid JSON ({exc.msg} at position {exc.pos})"
    raise ValueError(last_error)
