"""A video_pipeline job through the whole worker: per-frame rows land in frame_results."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.conftest import Env

pytestmark = pytest.mark.integration
av = pytest.importorskip("av")


def test_video_job_stores_frame_rows_and_returns_scenes(make_env: Callable[..., Env]) -> None:
    from tests.video.conftest import encode
    from worker.store import JobStore

    env = make_env()
    encode(env.data_dir / "media" / "clip.mp4", 90)
    env.redis_cli(
        "LPUSH",
        "stoker:queue:default",
        '{"id": "vid", "processor": "video_pipeline",'
        ' "params": {"video_path": "clip.mp4", "pipeline": "default", "frame_stride": 2}}',
    )
    env.cli("run", "--burst", timeout=300)
    row = env.row("vid")
    assert row is not None and row["status"] == "succeeded", row
    store = JobStore(env.db_url)
    frames = store.frame_rows("vid")
    store.close()
    assert len(frames) == 45
    assert [f["frame_index"] for f in frames] == list(range(0, 90, 2))
    assert {"scene_cuts", "motion", "quality"} <= set(frames[0]["values"])
    assert row["result"]["scenes"]
