"""Erasure of one submission (UK GDPR Art. 17), shared by ``DELETE /v1/submissions/{id}`` and retention expiry.

Why one function for both: an admin's erasure and ``purge_expired`` must remove exactly the same
things and leave the same kind of audit record (catalogue 40(iii)):

* every object under the submission's prefix (originals, report, extracted model);
* the receipts of presigned uploads it consumed (they hold its id and the API's response);
* the record and the idempotency entries whose stored response names it, with the audit record
  appended in the same atomic step (``StateStore.erase``), so there is never an erasure without
  its audit record nor an audit record for data still present in the state store.

Objects go first: if storage fails, the record stays and the request can be retried (503), never a
record pointing at deleted objects or objects no record names. The audit holds the tenant, the id,
who, when and counts: never a file name, content or callback URL. Queued messages carry only the
id, and a worker that finds no record does nothing (``worker.tasks._process``: "gone").
"""

from __future__ import annotations

import re

from .contracts import AuditRecord, StateStore, Storage, SubmissionRecord, submission_prefix
from .logs import event
from .presigned import drop_receipts

ERASURE = "erasure"
RETENTION = "retention_expiry"
#: Objects under a submission prefix that no record names are orphans once this old. A commit stores
#: the objects a moment before the record, so anything this old without one will never get one.
ORPHAN_AFTER_S = 24 * 3600
_SUBMISSION_OBJECT = re.compile(r"^tenants/(?P<tenant>[^/]+)/submissions/(?P<sid>[^/]+)/")


def erase_submission(state: StateStore, storage: Storage, rec: SubmissionRecord, *, actor: str,
                     action: str) -> AuditRecord | None:
    """Erase ``rec`` everywhere; the audit record written, or None if someone else erased it first.

    Raises ``StorageError`` / ``StateUnavailable`` when a backend is down (nothing half-audited).
    """
    prefix = submission_prefix(rec.tenant, rec.id)
    objects = storage.delete_prefix(prefix)
    receipts = drop_receipts(storage, rec.tenant, rec.id)
    audit = AuditRecord(action=action, tenant=rec.tenant, submission_id=rec.id, actor=actor,
                        deleted={"objects": objects, "upload_receipts": receipts, "files": len(rec.files)})
    if not state.erase(rec.id, rec.tenant, audit):
        return None
    # a worker finishing right now may have written its report after the first pass; its DONE transition
    # then fails (no record) and it deletes the prefix too, but do not rely on that alone
    storage.delete_prefix(prefix)
    return audit


def sweep_orphans(state: StateStore, storage: Storage, at: float, *, older_than_s: float = ORPHAN_AFTER_S) -> int:
    """Delete submission prefixes no record names, whose newest object is ``older_than_s`` old; returns how many.

    They come from a rollback whose delete failed while storage blinked (``uploads._discard`` logs
    ``orphan_objects``) or a worker writing its report as the record was erased. Nobody can read or
    erase them through the API, so retention must (UK GDPR storage limitation).
    """
    newest: dict[tuple[str, str], float] = {}
    for obj in storage.list("tenants/"):
        m = _SUBMISSION_OBJECT.match(obj.key)
        if m:
            key = (m["tenant"], m["sid"])
            newest[key] = max(newest.get(key, 0.0), obj.modified)
    swept = 0
    for (tenant, sid), modified in newest.items():
        if modified + older_than_s < at and state.get(sid, tenant) is None:
            storage.delete_prefix(submission_prefix(tenant, sid))
            swept += 1
    if swept:
        event("orphans_swept", prefixes=swept)
    return swept
