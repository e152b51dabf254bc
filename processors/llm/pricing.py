"""Cost of a job from the configured price table (`LLM_PRICES`)."""

from __future__ import annotations


def cost_usd(
    prices: dict[str, tuple[float, float]],
    provider: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> tuple[float, bool]:
    """(USD, priced): local models cost nothing; a remote model missing from the table
    costs 0.0 with `priced` False, so callers can tell "free" from "unknown"."""
    if provider == "local":
        return 0.0, True
    price = prices.get(model)
    if price is None:
        return 0.0, False
    per_prompt, per_completion = price
    total = (prompt_tokens * per_prompt + completion_tokens * per_completion) / 1_000_000
    return round(total, 8), True
