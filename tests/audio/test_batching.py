"""Diarization jobs batched across jobs (issue 14): `prepare` decodes and finds speech on
the CPU, `process_batch` embeds the windows of all jobs in one stream of batches and then
clusters each job on its own. Real models, the fixture conversations."""

from __future__ import annotations

from typing import Any

import structlog

from config import Settings
from processors.audio.diarization import PreparedAudio
from processors.base import Context, Item, PermanentError
from tests.audio.conftest import Recorder, RunJob
from tests.audio.synth import Conversation

FILES = ("meeting3.wav", "meeting2.wav", "monologue.wav")


def context(settings: Settings, job_id: str, recorder: Recorder | None = None) -> Context:
    recorder = recorder or Recorder()
    return Context(
        job_id=job_id,
        device="cpu",
        log=structlog.get_logger(),
        settings=settings,
        _progress=recorder.progress,
        _stop=lambda: recorder.stop,
    )


def items(diarizer: Any, settings: Settings, jobs: list[dict[str, Any]]) -> list[Item]:
    """Batch items prepared as the executor prepares them."""
    out = []
    for n, params in enumerate(jobs):
        ctx = context(settings, f"batch-{n}")
        validated = diarizer.Params(**params)
        try:
            prepared = diarizer.prepare(validated, ctx)
        except Exception as exc:  # the executor would fail this job before the batch
            prepared = exc
        out.append(Item(validated, prepared, ctx))
    return out


def essentials(result: dict[str, Any]) -> dict[str, Any]:
    """What a job's result says about its recording (not its timings or file paths)."""
    keys = ("num_speakers", "speakers", "segments", "words", "text", "duration")
    return {k: result[k] for k in keys}


def test_a_batch_gives_every_job_the_result_it_gets_alone(
    diarizer: Any,
    diarize: RunJob,
    settings: Settings,
    three_speakers: Conversation,
    two_speakers: Conversation,
    one_speaker: Conversation,
) -> None:
    alone = [essentials(diarize(audio_path=name)) for name in FILES]
    batch = diarizer.process_batch(items(diarizer, settings, [{"audio_path": f} for f in FILES]))
    assert [essentials(r) for r in batch] == alone


def test_a_batch_gives_each_job_its_own_hints(
    diarizer: Any, settings: Settings, three_speakers: Conversation
) -> None:
    jobs = [{"audio_path": "meeting3.wav", "num_speakers": n} for n in (3, 2)]
    results = diarizer.process_batch(items(diarizer, settings, jobs))
    assert [r["num_speakers"] for r in results] == [3, 2]


def test_an_unreadable_file_fails_only_its_own_job_in_a_batch(
    diarizer: Any, settings: Settings, two_speakers: Conversation, one_speaker: Conversation
) -> None:
    (settings.media_root / "garbage.wav").write_bytes(b"not audio at all" * 100)
    jobs = [{"audio_path": "meeting2.wav"}, {"audio_path": "garbage.wav"},
            {"audio_path": "monologue.wav"}]  # fmt: skip
    batch = items(diarizer, settings, jobs)
    batch[1] = Item(batch[1].params, batch[1].params, batch[1].ctx)  # prepared in the batch
    results = diarizer.process_batch(batch)
    assert isinstance(results[1], PermanentError)
    assert [r["num_speakers"] for r in (results[0], results[2])] == [2, 1]


def test_prepare_holds_the_decoded_audio_and_its_embedding_windows(
    diarizer: Any, settings: Settings, two_speakers: Conversation
) -> None:
    prepared = diarizer.prepare(
        diarizer.Params(audio_path="meeting2.wav"), context(settings, "prep")
    )
    assert isinstance(prepared, PreparedAudio)
    assert prepared.windows.audio.size > 0 and len(prepared.windows.starts) > 0
    assert set(prepared.timings) == {"decode", "vad"}


def test_every_job_in_a_batch_reports_its_embedding_progress(
    diarizer: Any, settings: Settings, two_speakers: Conversation, one_speaker: Conversation
) -> None:
    recorders = [Recorder(), Recorder()]
    batch = [
        Item(p, diarizer.prepare(p, ctx), ctx)
        for p, ctx in (
            (diarizer.Params(audio_path=name), context(settings, f"prog-{n}", recorders[n]))
            for n, name in enumerate(("meeting2.wav", "monologue.wav"))
        )
    ]
    diarizer.process_batch(batch)
    for recorder in recorders:
        assert recorder.stages == ["decode", "vad", "embed", "cluster", "align"]


def test_a_job_prepared_on_a_thread_while_another_runs_gets_its_own_result(
    diarizer: Any,
    diarize: RunJob,
    settings: Settings,
    three_speakers: Conversation,
    two_speakers: Conversation,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    alone = essentials(diarize(audio_path="meeting2.wav"))
    params = diarizer.Params(audio_path="meeting2.wav")
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(diarizer.prepare, params, context(settings, "ahead"))
        diarize(audio_path="meeting3.wav")  # the running job, on this thread
        prepared = ahead.result()
    assert essentials(diarizer.process(prepared, context(settings, "ahead"))) == alone
