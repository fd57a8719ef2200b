"""One place for configuration: `Settings`, read from `FEEDBACK_AI_*` environment variables.

Tests build `Settings(...)` explicitly; the CLI passes its options through the same class.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(StrEnum):
    embedded = "embedded"  # one process: in-process queue, embedded Qdrant engine, SQLite
    distributed = "distributed"  # Celery over Redis, Qdrant server, PostgreSQL


class StoreBackend(StrEnum):
    edge = "edge"  # qdrant-edge-py: Qdrant's engine embedded in-process, on local disk
    qdrant = "qdrant"  # qdrant-client: a Qdrant server (or ":memory:" / a path for local mode)


class EmbedBackend(StrEnum):
    auto = "auto"  # the fast path when its registry record passed the quality gate, else torch
    torch = "torch"  # plain sentence-transformers encode
    onnx = "onnx"  # ONNX Runtime fp32, exported locally from the packaged weights
    onnx_int8 = "onnx-int8"  # ONNX Runtime with dynamic int8 quantisation


class Settings(BaseSettings):
    """Every knob of feedback_ai; environment `FEEDBACK_AI_<NAME>`, e.g. `FEEDBACK_AI_DATA_DIR`."""

    model_config = SettingsConfigDict(env_prefix="FEEDBACK_AI_", env_file=None, extra="ignore")

    mode: Mode = Mode.embedded
    data_dir: Path = Path("var")

    # --- serving
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    auth: bool = True  # False only when explicitly asked; the server warns loudly at start
    bootstrap_key: str | None = None  # if set, the `default` workspace's admin key (else generated)
    auth_cache_s: float = Field(30.0, ge=0)  # a looked-up key is trusted this long; 0: every call

    # --- records (system of record: workspaces, keys, items, jobs)
    database_url: str | None = None  # default: sqlite file under data_dir

    # --- vectors
    store_backend: StoreBackend = StoreBackend.edge
    qdrant_url: str | None = None  # e.g. http://qdrant:6333 ; ":memory:" for tests
    qdrant_api_key: str | None = None
    collection: str = "feedback_mentions"

    # --- embedding
    embed_model: str = "all-MiniLM-L6-v2"  # packaged model name (see feedback_ai.embed.registry)
    embed_backend: EmbedBackend = EmbedBackend.auto
    embed_batch_size: int = Field(64, ge=1, le=4096)
    models_dir: Path = Path(__file__).resolve().parents[1] / "models"  # registry + artifacts

    # --- nlp
    redact_pii: bool = True
    redact_person_names: bool = (
        True  # needs a trained spaCy pipeline; skipped (with a log line) if absent
    )
    keep_original_text: bool = False
    spacy_model: str = "en_core_web_sm"
    mention_min_chars: int = Field(280, ge=0)  # shorter feedback stays one mention

    # --- limits (documented in the README)
    max_text_chars: int = Field(20_000, ge=1)
    max_batch_items: int = Field(1_000, ge=1)
    max_metadata_bytes: int = Field(8_192, ge=2)
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1)
    max_search_k: int = Field(100, ge=1)

    # --- queue
    broker_url: str = "redis://127.0.0.1:6379/0"
    task_batch_size: int = Field(1000, ge=1)  # items per Celery task message
    task_max_retries: int = Field(5, ge=0)
    broker_visibility_timeout_s: int = Field(3600, ge=1)  # unacked message redelivery (Redis)
    embedded_workers: int = Field(1, ge=1)
    # Python's GIL switch interval in processes that build a service (0: keep Python's 5 ms). The
    # ingest pipeline's model threads leave the GIL for each ONNX run and need it back when the run
    # ends, while the task's own thread runs NLP in Python: at 5 ms they waited up to that long
    # each time, with their core idle. 1 ms took the pipeline (`FeedbackService.process`, in one
    # process, 5,000 items) from 3.98 to 3.87 s: means of 13 alternating runs, 11 of the 13 pairs
    # faster, on a 2-core AMX Xeon.
    gil_switch_interval_ms: float = Field(1.0, ge=0, le=100)

    # --- themes (refits, live assignment, emerging themes, alerts)
    # refits fit on at most this many mentions (the rest go to the nearest centroid): the kNN
    # graph is quadratic in it; at 100k stored, 50k took 226 s of a 279 s refit (bench_refit)
    theme_fit_sample: int = Field(30_000, ge=100)
    theme_seed: int = 42
    theme_match_threshold: float = Field(0.8, gt=0, le=1)  # centroid cosine to keep an id
    theme_assign_quantile: float = Field(0.05, ge=0, lt=1)  # live threshold (see themes/refit)
    theme_min_mentions: int = Field(20, ge=2)  # fewer stored mentions: nothing to refit
    theme_refit_every_s: int = Field(86_400, ge=60)  # Celery beat: refit every workspace
    emerging_min_items: int = Field(10, ge=2)  # pool items that must gather to propose a theme
    emerging_check_every: int = Field(50, ge=1)  # pool growth between two emerging checks
    emerging_max_pool: int = Field(5_000, ge=10)  # most recent pool mentions clustered
    alert_window_days: int = Field(7, ge=1)
    alert_baseline_days: int = Field(28, ge=1)
    alert_alpha: float = Field(0.01, gt=0, lt=1)  # family-wise, Bonferroni over themes
    alert_min_items: int = Field(5, ge=1)
    analytics_max_age_s: float = Field(30.0, ge=0)  # rankings lag live assignment by this much

    # --- links: roadmap items, matching, webhooks
    match_matched: float = Field(0.8, ge=0, le=1)  # calibrated confidence for `matched`
    match_review: float = Field(0.4, ge=0, le=1)  # ... for `needs_review` (below: `no_match`)
    link_suggest_min: float = Field(0.4, ge=0, le=1)  # theme <-> roadmap suggestions shown
    match_pool: int = Field(20_000, ge=0)  # stored mentions the matcher self-trains on
    match_fit_wait_s: float = Field(2.0, ge=0)  # then a match answers from the last matcher
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_max_retries: int = Field(8, ge=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'feedback_ai.sqlite3').resolve()}"

    @property
    def vectors_dir(self) -> Path:
        return self.data_dir / "vectors"

    @property
    def themes_dir(self) -> Path:
        """Saved theme models (BERTopic, safetensors) and their registry."""
        return self.data_dir / "models" / "themes"
