"""The gateway's one settings object, read once from FACET_* environment variables and passed in."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from triton_core.batching import DEFAULT_CONTEXT_BATCH_IMAGES
from triton_core.tiling import DEFAULT_PRE_PAD, DEFAULT_TILE, DEFAULT_TILE_PAD


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACET_", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = Field(
        default="",
        description="Base URL put in result links; empty means the request's own base URL.",
    )

    cors_origins: list[str] = Field(
        default=["*"],
        description="origins allowed to call from a browser (the seed's fetch() example)",
    )

    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or CIDR blocks of reverse proxies whose X-Forwarded-For names "
        "the client (rate limits count that client); from any other peer the header is ignored",
    )

    # Triton
    triton_grpc_url: str = "127.0.0.1:8001"
    triton_grpc_urls: list[str] = Field(
        default_factory=list,
        description="several Tritons serving the same repository: calls are spread over the "
        "ready ones; empty means triton_grpc_url alone",
    )
    triton_timeout_s: float = Field(default=120.0, gt=0, description="deadline of one gRPC call")
    triton_use_shared_memory: bool = Field(
        default=False, description="send large tensors through system shared memory (same host)"
    )
    triton_readiness_interval_s: float = 5.0

    # Uploads and images
    max_upload_bytes: int = 15 * 1024 * 1024  # the seed's documented limit
    max_input_pixels: int = 4_000_000  # ×16 for a 4× upscale: the output stays under ~200 MB
    max_image_side: int = 8192

    # Videos (face swapping): each limit answers 413 naming its field, the timeouts 400
    video_max_bytes: int = Field(default=500 * 1024 * 1024, ge=1)  # the seed's default upload
    video_max_duration_s: float = Field(default=600.0, gt=0)
    video_max_frames: int = Field(default=36_000, ge=1)  # ten minutes at 60 fps
    video_max_side: int = Field(default=4096, ge=2)
    video_max_pixels: int = Field(default=4096 * 2160, ge=4)  # DCI 4K
    video_probe_timeout_s: float = Field(
        default=30.0, gt=0, description="reading an upload's packets once, before any decoding"
    )
    video_window_frames: int = Field(
        default=8, ge=1, le=64, description="frames whose faces go to the models together"
    )
    video_stall_timeout_s: float = Field(
        default=60.0, gt=0, description="longest wait for the decoder's next frame"
    )

    # Upscaling
    upscale_model: str = "realesrgan_x4plus"
    tile_size: int = DEFAULT_TILE
    tile_pad: int = DEFAULT_TILE_PAD
    pre_pad: int = DEFAULT_PRE_PAD

    # Face restoration and fetching image_urls (/batch)
    restore_concurrency: int = Field(default=2, ge=1, description="/restore calls at once")
    batch_max_urls: int = Field(default=20, ge=1)
    fetch_timeout_s: float = Field(default=20.0, gt=0)
    fetch_max_redirects: int = Field(default=3, ge=0)
    fetch_allow_hosts: list[str] = Field(
        default_factory=list,
        description="TESTS ONLY: exact host:port pairs exempt from the public-address check",
    )

    # Jobs and results
    data_dir: Path = Path("run/gateway")
    job_workers: int = Field(default=1, ge=1, description="jobs processed at once")
    max_pending_jobs: int = Field(default=100, ge=1, description="queued jobs before 503")
    result_ttl_s: int = 24 * 3600
    job_attempts: int = Field(default=2, ge=1, description="runs before a job ends failed")
    job_unavailable_window_s: float = Field(
        default=90.0,
        ge=0,
        description="how long a running job waits out an unreachable or restarting Triton "
        "(retrying with backoff) before the failure counts as one of its attempts",
    )
    job_store: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="sqlite: one gateway's own file; postgres: one job table for several "
        "gateways (postgres_url), with leases so a dead gateway's jobs are taken over once",
    )
    job_lease_s: float = Field(
        default=30.0,
        ge=2,
        description="how long a running job stays its gateway's without a renewal; a job whose "
        "gateway died is taken over this long after its last renewal",
    )
    redis_url: SecretStr = Field(
        default=SecretStr(""),
        description="Redis for the job queue and the rate-limit counters (several gateways); "
        "secret: it may hold a password",
    )
    shared_dir: Path | None = Field(
        default=None,
        description="uploads and results, on a volume every gateway mounts at this path; "
        "empty means inside data_dir (one gateway)",
    )

    # Image records and their embeddings (gateway/vectors/)
    vector_store: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="sqlite: one embedded file with sqlite-vec; postgres: pgvector (scale-out)",
    )
    postgres_url: SecretStr = Field(
        default=SecretStr(""),
        description="PostgreSQL with pgvector for vector_store=postgres; secret: it may hold "
        "a password",
    )

    # The Image Context Extractor API (/api/v1): server-side paths, batching, objects
    media_roots: list[Path] = Field(
        default=[Path("media")],
        description="folders whose files image_path, directory_path and upload_dir may name "
        "(created at start); a relative path starts in the first",
    )
    context_batch_images: int = Field(
        default=DEFAULT_CONTEXT_BATCH_IMAGES,
        ge=1,
        le=64,
        description="images whose context is computed in one batch",
    )
    context_object_score: float = Field(
        default=0.35, ge=0.0, le=1.0, description="NanoDet score from which an object is listed"
    )
    context_max_directory_files: int = Field(
        default=10_000, ge=1, description="image files one directory request may cover"
    )
    ws_max_connections: int = Field(default=100, ge=1)
    ws_max_message_bytes: int = Field(default=64 * 1024, ge=256)
    ws_queue_length: int = Field(default=64, ge=4, description="events held per slow client")

    # The AI Multimedia Platform's recognition API (/api/face-recognition, /api/image-recognition)
    api_token: SecretStr = Field(
        default=SecretStr(""),
        description="bearer token the face gallery's routes and /ws/camera require when set; "
        "production deployments must set it",
    )
    recognizer: Literal["auto", "dlib", "arcface"] = Field(
        default="auto",
        description="face embedder of the gallery: auto = ArcFace when its weights are "
        "official, else dlib's ResNet (real package weights)",
    )
    recognition_detector: Literal["mtcnn", "scrfd"] = "mtcnn"
    recognition_face_score: float = Field(default=0.9, gt=0, le=1)
    gallery_retention_days: int = Field(
        default=365,
        ge=1,
        le=3 * 365,  # BIPA: destroyed within three years at the latest
        description="days an enrolment is kept after consent; the sweeper deletes it then",
    )
    consent_purposes: list[str] = Field(
        default=["face_recognition"],
        description="purposes a registration's consent may name (what faces are collected for)",
    )
    consent_text_versions: list[str] = Field(
        default=["2026-12-01"],
        description="versions of the consent text a registration may name",
    )
    gallery_sweep_interval_s: float = Field(default=3600.0, gt=0)
    camera_max_frame_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    camera_max_fps: float = Field(default=30.0, gt=0, description="frames per second accepted")
    camera_max_connections: int = Field(default=4, ge=1)

    # Rate limits (requests per minute per client), as the seed documents
    rate_limit_upscale: int = 20
    rate_limit_status: int = 60
    rate_limit_other: int = 30
    rate_limits_enabled: bool = True

    @field_validator("trusted_proxies")
    @classmethod
    def _networks_parse(cls, entries: list[str]) -> list[str]:
        """A typo in a proxy's address fails at start-up, naming the entry."""
        for entry in entries:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError as error:
                raise ValueError(f"FACET_TRUSTED_PROXIES entry {entry!r}: {error}") from None
        return entries

    @model_validator(mode="after")
    def _shared_queue_needs_a_shared_store(self) -> Settings:
        """A job taken off a shared queue by a gateway whose own SQLite has no row for it would
        be dropped without a word: Redis comes with the PostgreSQL job store or not at all."""
        if self.redis_url.get_secret_value() and self.job_store != "postgres":
            raise ValueError(
                "FACET_REDIS_URL shares the job queue between gateways, so their job records "
                "must be shared too: set FACET_JOB_STORE=postgres (and FACET_POSTGRES_URL)"
            )
        if self.job_store == "postgres" and self.shared_dir is None:
            raise ValueError(
                "FACET_JOB_STORE=postgres lets another gateway take over a job, which then "
                "needs the job's upload and result files: set FACET_SHARED_DIR to a volume "
                "every gateway mounts"
            )
        return self

    @property
    def database_path(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    @property
    def vector_database_path(self) -> Path:
        return self.data_dir / "vectors.sqlite3"

    @property
    def gallery_database_path(self) -> Path:
        return self.data_dir / "gallery.sqlite3"

    @property
    def gallery_audit_path(self) -> Path:
        return self.data_dir / "gallery-audit.sqlite3"

    @property
    def triton_urls(self) -> list[str]:
        return list(self.triton_grpc_urls) or [self.triton_grpc_url]

    @property
    def files_dir(self) -> Path:
        return self.shared_dir or self.data_dir

    @property
    def results_dir(self) -> Path:
        return self.files_dir / "results"

    @property
    def uploads_dir(self) -> Path:
        return self.files_dir / "uploads"
