"""Submission state behind the ``StateStore`` contract: SQLite (embedded) or Redis (scale-out).

Both backends make ``transition`` one atomic compare-and-set (a single conditional UPDATE;
a Lua script), so two workers or a redelivered task can never both finish a submission.

Shared rules, so the API behaves the same on either backend:

* ``id``, ``tenant``, ``status`` and ``created_at`` are fixed by ``create``; ``status``
  changes only through ``transition``. ``update``/``transition`` refuse unknown fields
  (a typo would otherwise be silently stored) and stamp ``updated_at`` unless given.
* ``list`` is newest first (``created_at`` desc, then ``id`` desc). Its cursor is opaque to
  callers: url-safe base64 of ``[created_at, id]`` of the last row returned, used as a
  keyset bound, so pages stay stable while submissions are created or deleted.
* Idempotency records live ``idempotency_ttl_s`` (default 24 h), then the key may be reused.
* Server/database failures raise ``StateUnavailable`` (the API answers 503, workers retry).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from service.state_common import StateUnavailable, decode_cursor, encode_cursor
from service.state_redis import RedisState
from service.state_sqlite import SqliteState
from service.storage import default_data_dir

__all__ = ["RedisState", "SqliteState", "StateUnavailable", "decode_cursor", "encode_cursor", "state_from_env"]


def state_from_env(env: Mapping[str, str] | None = None) -> SqliteState | RedisState:
    """``GATECHECK_STATE=sqlite`` (default; file under ``GATECHECK_DATA_DIR``) or ``redis``."""
    env = os.environ if env is None else env
    kind = env.get("GATECHECK_STATE", "sqlite").strip().lower()
    if kind == "sqlite":
        return SqliteState(default_data_dir(env) / "state.sqlite3")
    if kind == "redis":
        return RedisState(env.get("GATECHECK_REDIS_URL") or "redis://127.0.0.1:6379/0")
    raise ValueError(f"GATECHECK_STATE must be 'sqlite' or 'redis', not {kind!r}")
