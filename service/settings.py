"""Service settings from the environment, one place for API, worker and `gatecheck serve`.

Embedded mode (the default) needs no servers: SQLite state, local-disk storage and
a filesystem Celery transport under ``GATECHECK_DATA_DIR``. Scale-out sets Redis and
MinIO URLs. Insecure defaults are refused outside embedded mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024
MAX_UPLOAD_URL_TTL_S = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer (anchors S4)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"GATECHECK_{name}", default)


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(_env("DATA_DIR", str(Path.home() / ".gatecheck"))))
    state: str = field(default_factory=lambda: _env("STATE", "sqlite"))  # sqlite | redis
    storage: str = field(default_factory=lambda: _env("STORAGE", "local"))  # local | minio
    broker_url: str = field(default_factory=lambda: _env("BROKER_URL", ""))  # "" = embedded filesystem transport
    redis_url: str = field(default_factory=lambda: _env("REDIS_URL", "redis://127.0.0.1:6379/0"))
    max_file_bytes: int = field(default_factory=lambda: int(_env("MAX_UPLOAD_FILE_BYTES", str(2048 * MiB))))
    max_submission_bytes: int = field(default_factory=lambda: int(_env("MAX_SUBMISSION_BYTES", str(4096 * MiB))))
    max_files: int = field(default_factory=lambda: int(_env("MAX_FILES", "200")))
    retention_days: int = field(default_factory=lambda: int(_env("RETENTION_DAYS", "90")))
    task_time_limit_s: int = field(default_factory=lambda: int(_env("TASK_TIME_LIMIT_S", "900")))
    # Redis redelivers unacked tasks after this; every time limit must stay below it.
    visibility_timeout_s: int = field(default_factory=lambda: int(_env("VISIBILITY_TIMEOUT_S", "3600")))
    max_attempts: int = field(default_factory=lambda: int(_env("MAX_ATTEMPTS", "3")))
    # Celery replaces its pool child after this many checks. Parsers run in sandbox children (recycled after
    # 50 files), so the pool child only checks: its RSS stayed flat at 146 MiB over 200 checks, and each
    # replacement stalls the queue for 1-5 s (benchmarks/README.md, "Pool recycling").
    max_tasks_per_child: int = field(default_factory=lambda: int(_env("MAX_TASKS_PER_CHILD", "500")))
    rate_limit_per_minute: int = field(default_factory=lambda: int(_env("RATE_LIMIT_PER_MINUTE", "120")))
    webhook_allow_private: bool = field(default_factory=lambda: _env("WEBHOOK_ALLOW_PRIVATE", "0") == "1")
    public_url: str = field(default_factory=lambda: _env("PUBLIC_URL", "http://127.0.0.1:8000"))
    # clamd for malware scanning (worker/avscan.py): unix:///run/clamav/clamd.ctl or tcp://clamav:3310; "" = off
    clamd: str = field(default_factory=lambda: _env("CLAMD", ""))
    # /metrics names routes and queue depth: with a token set, only a scraper sending it as Bearer may read it.
    metrics_token: str = field(default_factory=lambda: _env("METRICS_TOKEN", ""))
    # Backpressure (anchors G1/U2): past these the API refuses before reading a body, nothing stored.
    # Submissions waiting in the broker queue; at or over it POST /v1/submissions answers 429. 0 = no cap.
    max_queued: int = field(default_factory=lambda: int(_env("MAX_QUEUED", "1000")))
    # Uploads being received at once by one API process; past it 503. 0 = no cap.
    max_inflight_uploads: int = field(default_factory=lambda: int(_env("MAX_INFLIGHT_UPLOADS", "64")))
    # Lifetime of upload URLs (POST /v1/uploads); S3 SigV4 allows at most 7 days.
    upload_url_ttl_s: int = field(default_factory=lambda: int(_env("UPLOAD_URL_TTL_S", "900")))

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    def validate(self) -> None:
        if self.task_time_limit_s >= self.visibility_timeout_s:
            raise ValueError("GATECHECK_TASK_TIME_LIMIT_S must be below GATECHECK_VISIBILITY_TIMEOUT_S "
                             "(Redis would redeliver a task still running)")
        check_upload_url_ttl(self.upload_url_ttl_s)
        if self.max_queued < 0 or self.max_inflight_uploads < 0:
            raise ValueError("GATECHECK_MAX_QUEUED and GATECHECK_MAX_INFLIGHT_UPLOADS must be >= 0 (0 = no cap)")
        if self.max_tasks_per_child < 1:
            raise ValueError("GATECHECK_MAX_TASKS_PER_CHILD must be >= 1")


def check_upload_url_ttl(ttl_s: int) -> int:
    """``ttl_s`` if it is a valid upload-URL lifetime (1 s to 7 days), else ValueError."""
    if not 1 <= ttl_s <= MAX_UPLOAD_URL_TTL_S:
        raise ValueError(f"GATECHECK_UPLOAD_URL_TTL_S must be between 1 and {MAX_UPLOAD_URL_TTL_S} seconds")
    return ttl_s
