"""Chunking and JSON extraction (pure functions, with a word counter standing in for a
tokenizer)."""

from __future__ import annotations

import pytest

from processors.llm.prompts import extract_json, split_text


def words(text: str) -> int:
    return len(text.split())


def test_short_text_is_one_chunk() -> None:
    assert split_text("a b c\nd e", words, 100) == ["a b c\nd e"]


def test_chunks_respect_the_limit_and_keep_every_line_in_order() -> None:
    text = "\n".join(f"SPEAKER_0{i % 3}: line {i} says something" for i in range(40))
    chunks = split_text(text, words, 25)
    assert len(chunks) > 1
    assert all(words(chunk) <= 25 for chunk in chunks)
    assert "\n".join(chunks) == text


def test_a_line_longer_than_the_limit_is_cut_between_words() -> None:
    text = " ".join(f"w{i}" for i in range(30))
    chunks = split_text(text, words, 8)
    assert all(words(chunk) <= 8 for chunk in chunks)
    assert " ".join(chunks).split() == text.split()


def test_json_is_found_in_fenced_or_chatty_answers() -> None:
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Here you go:\n```json\n["x", "y"]\n```') == ["x", "y"]
    assert extract_json('The answer is {"ok": true}. Hope it helps!') == {"ok": True}


def test_answer_without_json_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"not valid JSON|no JSON"):
        extract_json("I cannot answer that")
