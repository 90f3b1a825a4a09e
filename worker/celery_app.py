"""The Celery app, configured from ``service.settings.Settings`` (one place for API, worker and serve).

Delivery semantics (reliability-anchors §4, C1–C5). Celery's default is at-most-once:
the message is acked just before the task runs, so a worker crash loses the job.
We want "nothing lost", so:

* ``task_acks_late`` acks after the task returns, and ``task_reject_on_worker_lost``
  requeues when the pool child dies (SIGKILL, segfault, OOM). Without the second
  one a killed child's message is acked and the job is lost [C1, C2].
* Those two together can loop forever on a file that kills the worker every time.
  The task therefore counts attempts in the state store (not in the message, which
  a crash never gets to update) and fails the job past ``max_attempts`` [C2].
* ``worker_prefetch_multiplier = 1``: tasks are long, so a worker must not hoard
  messages that an idle worker could run [C5].
* Time limits come from settings and stay strictly below Redis's
  ``visibility_timeout``, or Redis would hand a still-running task to a second
  worker [C3]. ``Settings.validate`` refuses the opposite. The visibility timeout is
  set in all three places the docs name.
* No result backend: a submission's status lives in the state store, whose
  compare-and-set ``transition`` is what makes redelivery safe.
* One run at a time (catalogue 26): a run ``claim``s the submission with a lease
  of the hard time limit plus a margin (``lease_s``). No run can outlive the hard
  limit, so an expired lease means its holder is gone; a live lease held by
  another process turns a duplicate message into a wait, never a second run.
* Broker connection loss: running checks continue
  (``worker_cancel_long_running_tasks_on_connection_loss`` off: cancelling would
  burn an attempt per Redis blip); their acks are lost with the channel, so the
  message comes back after the visibility timeout and finds the submission done.
* Beat runs ``reconcile`` every ``RECONCILE_INTERVAL_S``: the state store, not the
  queue, is the source of truth, and a submission left unfinished with no message
  (the last second of an ``everysec`` AOF, kombu's pop-then-record window) gets a
  new one (catalogue 28).

Embedded mode (no ``GATECHECK_BROKER_URL``) uses kombu's filesystem transport under
``data_dir/broker`` so ``gatecheck serve`` needs no server. Consumed messages are
*moved* into ``processed/`` in the same directory tree: an atomic rename, so two
consumers can never both take one message (a move to /tmp could cross file systems
and degrade into copy + delete).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery, signals

from service.settings import Settings

#: The longest the soft limit comes before the hard one: time to record ``timeout``.
MAX_SOFT_MARGIN_S = 60
QUEUE = "gatecheck"
#: How often beat runs ``worker.tasks.reconcile``.
RECONCILE_INTERVAL_S = 60.0
#: Default quiet time before an unfinished submission is re-enqueued (``GATECHECK_RECONCILE_AFTER_S``).
RECONCILE_AFTER_S = 600.0


def soft_time_limit(hard_s: int) -> int:
    """The soft limit: a little below the hard one, so the task can record why it stopped."""
    margin = min(MAX_SOFT_MARGIN_S, max(1, hard_s // 10))
    return max(1, hard_s - margin)


def lease_s(hard_s: int) -> int:
    """How long a claim holds a submission: the hard time limit plus a margin for the kill and clock skew."""
    return hard_s + min(MAX_SOFT_MARGIN_S, max(2, hard_s // 10))


def reconcile_after_s() -> float:
    """``GATECHECK_RECONCILE_AFTER_S``: how long an unfinished submission must sit untouched before
    the reconciler sends it a new message. Longer than a normal queue wait, or backlogs get duplicates
    (harmless, but wasted); shorter than anyone would wait for a lost one."""
    value = float(os.environ.get("GATECHECK_RECONCILE_AFTER_S") or RECONCILE_AFTER_S)
    if value < 0:
        raise ValueError("GATECHECK_RECONCILE_AFTER_S must be >= 0")
    return value


def broker_dirs(data_dir: Path) -> dict[str, Path]:
    """Folders of the embedded filesystem broker (``ensure_broker_dirs`` creates them)."""
    root = data_dir / "broker"
    return {"queue": root / "queue", "processed": root / "processed", "control": root / "control"}


def ensure_broker_dirs(settings: Settings) -> None:
    """Create the filesystem broker's folders; on use, not on import, so importing has no side effects."""
    if settings.embedded:
        for d in broker_dirs(settings.data_dir).values():
            d.mkdir(parents=True, exist_ok=True, mode=0o700)


def _transport_options(settings: Settings) -> dict[str, Any]:
    vt = settings.visibility_timeout_s
    opts: dict[str, Any] = {
        "visibility_timeout": vt,
        # kombu sweeps for unacked messages past the timeout every interval x throttle
        # seconds (default 10 x 10 = 100 s); scale the sweep with the timeout instead.
        "unacked_restore_interval": max(1, min(60, vt // 10)),
        "unacked_restore_throttle": 1,
    }
    if settings.embedded:
        dirs = broker_dirs(settings.data_dir)
        opts |= {
            "data_folder_in": str(dirs["queue"]),
            "data_folder_out": str(dirs["queue"]),
            "processed_folder": str(dirs["processed"]),
            "store_processed": True,
            "control_folder": str(dirs["control"]),
            "polling_interval": 0.5,
        }
    return opts


def config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings``; a plain dict so tests can assert on it."""
    settings.validate()
    opts = _transport_options(settings)
    return {
        "broker_url": settings.broker_url or "filesystem://",
        "broker_transport_options": opts,
        "result_backend": None,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "visibility_timeout": settings.visibility_timeout_s,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,  # a failed/timed-out task is recorded FAILED, not redelivered
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": settings.max_tasks_per_child,
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": soft_time_limit(settings.task_time_limit_s),
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a Redis restart must never stop a worker consuming (C6)
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # remote control over the filesystem transport leaves a pidbox queue per dead worker behind
        "worker_enable_remote_control": not settings.embedded,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "purge-expired": {"task": "worker.tasks.purge_expired", "schedule": 6 * 3600.0},
            "reconcile": {"task": "worker.tasks.reconcile", "schedule": RECONCILE_INTERVAL_S},
        },
        "timezone": "UTC",
    }


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings`` with the tasks registered."""
    app = Celery("gatecheck", include=["worker.tasks"])
    app.conf.update(config(settings))
    return app


def configure(settings: Settings) -> None:
    """Re-point the module's app at ``settings`` (tests and ``gatecheck serve``), before first use."""
    global _settings
    app.conf.update(config(settings))
    _settings = settings


def queue_depth() -> int:
    """Messages waiting in the submissions queue (the API's /metrics gauge); -1 if the broker is unreachable.

    Bounded: kombu's ``default_channel`` alone retries a lost broker for ever, which would hang API
    requests through a Redis outage instead of answering 503 (catalogue 28/29).
    """
    try:
        ensure_broker_dirs(_settings)
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0.2, interval_step=0.2, timeout=2)
            return int(conn.default_channel.queue_declare(QUEUE, durable=True, auto_delete=False).message_count)
    except Exception:
        return -1


def current_settings() -> Settings:
    """The settings the app was last configured with: tasks read limits and backends from here."""
    return _settings


_settings = Settings()
app = make_celery(_settings)


@signals.worker_init.connect
@signals.beat_init.connect
def _prepare(**_: Any) -> None:
    """The filesystem broker's folders must exist before the consumer polls them."""
    ensure_broker_dirs(_settings)


@signals.worker_init.connect
def _zip_selftest(**_: Any) -> None:
    """Refuse to start if the zip pre-scan stopped catching an overlap bomb (CVE-2024-0450); extractors.zipscan."""
    from extractors.zipscan import selftest

    selftest()


@signals.after_setup_logger.connect
def _json_logs(**_: Any) -> None:
    """Worker events as JSON lines with ids and codes only (service.logs: no personal data in logs)."""
    import logging

    from service.logs import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gatecheck.worker")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
