"""A slow model load shows as a stage that counts its seconds."""

from __future__ import annotations

import time

from config import Settings
from processors.llm.processor import loading_progress
from tests.llm.support import make_context


def test_a_long_load_reports_its_stage_and_elapsed_seconds() -> None:
    stages: list[str | None] = []
    ctx = make_context(Settings())
    ctx._progress = lambda fraction, stage: stages.append(stage)
    with loading_progress(ctx, "load model", every=0.05):
        time.sleep(0.3)
    assert stages[0] == "load model" and stages[-1] == "load model 0 s" and len(stages) >= 3


def test_loading_without_a_job_reports_nothing() -> None:
    with loading_progress(None, "load model", every=0.01):
        time.sleep(0.03)
