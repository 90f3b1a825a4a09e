"""One call from inputs to a report, shared by the CLI and the service worker."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from extractors import CountMode, Limits, iter_extract
from extractors.limits import DEFAULT_LIMITS

from . import runner, submission
from .profile import Profile, Role


def check_paths(
    paths: Iterable[str | Path],
    profile: Profile,
    method_id: str,
    *,
    roles: dict[str, Role] | None = None,
    meta: dict[str, str] | None = None,
    mode: CountMode = CountMode.WORD,
    limits: Limits = DEFAULT_LIMITS,
    sandbox: bool = False,
) -> runner.Report:
    """Extract every input (files, folders, zips) and run the method's checks.

    ``sandbox=True``: parse each file in a time- and memory-capped child (the worker does, for untrusted uploads).
    """
    if method_id not in profile.methods:
        raise KeyError(f"{profile.id} has no method {method_id!r}; it has {', '.join(profile.methods)}")
    docs = []
    errors: list[dict[str, str]] = []
    for _, result in iter_extract(paths, mode=mode, limits=limits, sandbox=sandbox):
        docs.extend((d, d.group is not None) for d in result.documents)
        errors.extend(result.errors)
    sub = submission.build(docs, errors, roles or {}, meta or {})
    return runner.run(sub, profile, method_id)
