"""Token counts are not secrets; the statistics add up."""

from __future__ import annotations

import pytest

from worker.logs import _redact
from worker.stats import Stats


@pytest.mark.parametrize(
    "key", ["prompt_tokens", "completion_tokens", "total_tokens", "max_new_tokens", "tokens_per_s"]
)
def test_token_counts_are_logged_as_they_are(key: str) -> None:
    assert _redact(None, "", {key: 42})[key] == 42


@pytest.mark.parametrize("key", ["token", "api_token", "hf_token", "password", "api_key"])
def test_secrets_are_still_masked(key: str) -> None:
    assert _redact(None, "", {key: "s3cret"})[key] == "***"


def test_processed_is_the_sum_of_every_outcome() -> None:
    stats = Stats(succeeded=12, failed=4, retried=2, requeued=1, cancelled=1, rejected=3)
    stats.skipped = 5
    summary = stats.summary()
    outcomes = ("succeeded", "failed", "retried", "requeued", "cancelled", "rejected")
    assert summary["processed"] == sum(summary[k] for k in outcomes) == 23
