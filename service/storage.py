"""Object storage behind the ``Storage`` contract: local disk (embedded) or an S3 server (MinIO).

Why one key grammar for both backends: the same key must name the same object whichever
backend a deployment uses, so keys are checked once (``check_key``) and anything the local
filesystem would normalise away (``a//b``, ``./``, ``..``) or S3 would treat differently is
refused everywhere rather than silently mapped.

Why ``StorageError``: the API and workers only need to know "retry later" (``unavailable``),
"gone" (``not_found``) or "misconfigured" (``denied``); SDK and urllib3 exceptions are
translated once here so no caller imports ``minio`` or ``urllib3``.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import urlsplit

from service.contracts import ObjectInfo

MiB = 1024 * 1024
CHUNK = 1 * MiB  # streaming copy unit: bounded memory whatever the object size
PART_SIZE = 10 * MiB  # multipart part size when the length is unknown (S3 minimum is 5 MiB)
MAX_KEY_BYTES = 1024  # the S3 limit
TMP_PREFIX = ".gctmp-"  # LocalStorage's in-flight files; reserved, so no key can collide with one

StorageCode = Literal["unavailable", "not_found", "denied"]


class StorageError(Exception):
    """A storage failure callers can act on: ``unavailable`` (retry), ``not_found``, ``denied`` (config)."""

    def __init__(self, code: StorageCode, message: str) -> None:
        super().__init__(code, message)  # both in args, so the error pickles (Celery task results)
        self.code: StorageCode = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def check_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ValueError.

    A prefix may end with ``/``; an empty prefix is refused because "delete everything"
    is never what a caller building ``tenants/{t}/submissions/{id}/`` meant.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"storage key longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/") or "\\" in key or any(ord(c) < 32 or c == "\x7f" for c in key):
        raise ValueError(f"storage key {key!r} is absolute or has control characters or backslashes")
    body = key[:-1] if prefix and key.endswith("/") else key
    for part in body.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"storage key {key!r} has an empty, '.' or '..' segment")
        if part.startswith(TMP_PREFIX):
            raise ValueError(f"storage key {key!r} uses the reserved {TMP_PREFIX!r} prefix")
    return key


def _copy(src: IO[bytes], dst: IO[bytes], length: int | None) -> int:
    """Copy in CHUNK pieces; with ``length``, copy exactly that many bytes or raise OSError (as minio does)."""
    copied = 0
    while length is None or copied < length:
        want = CHUNK if length is None else min(CHUNK, length - copied)
        chunk = src.read(want)
        if not chunk:
            break
        dst.write(chunk)
        copied += len(chunk)
    if length is not None and copied != length:
        raise OSError(f"stream ended after {copied} of {length} bytes")
    return copied


class LocalStorage:
    """Objects as files under ``root`` (embedded mode: one machine, no object server).

    Writes go to a temp file in the target directory and are renamed into place with
    ``os.replace``, so a reader sees the old object or the new one, never a partial one;
    a reader holding the old file keeps reading it after a replace (POSIX inode semantics).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, *, prefix: bool = False) -> Path:
        """Map a checked key to a path under root; segments are already free of ``..`` and absolutes."""
        check_key(key, prefix=prefix)
        return self.root.joinpath(*key.rstrip("/").split("/"))

    def put(self, key: str, stream: IO[bytes], length: int | None = None, content_type: str = "") -> None:
        path = self._path(key)
        with _os_errors(key):
            fd, tmp = self._tempfile(path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    _copy(stream, out, length)
                    out.flush()
                    os.fsync(out.fileno())  # a report marked DONE must still be there after a crash
                os.replace(tmp, path)
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise

    @staticmethod
    def _tempfile(directory: Path) -> tuple[int, str]:
        """Create the temp file, retrying if a concurrent ``delete_prefix`` pruned the fresh directory."""
        for attempt in range(3):
            directory.mkdir(parents=True, exist_ok=True)
            try:
                return tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, key: str) -> IO[bytes]:
        path = self._path(key)
        with _os_errors(key):
            return open(path, "rb")  # the caller closes it (contract)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete_prefix(self, prefix: str) -> int:
        """Delete files whose key starts with ``prefix`` (S3 semantics: a string prefix, not only a folder)."""
        start = self._path(prefix, prefix=True)
        if not prefix.endswith("/"):
            start = start.parent  # "a/b" also matches "a/bc", so walk the parent
        deleted = 0
        with _os_errors(prefix):
            for rel in self._keys_under(start, prefix):
                with suppress(FileNotFoundError):  # a concurrent delete got there first
                    (self.root / rel).unlink()
                    deleted += 1
            self._prune_empty_dirs(start, prefix)
        return deleted

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Keys starting with ``prefix`` (not in-flight temp files), walked with non-matching subtrees pruned.

        Read-after-write and list-after-write hold because ``put`` renames the finished file into place.
        """
        start = self._path(prefix, prefix=True)
        if not prefix.endswith("/"):
            start = start.parent
        with _os_errors(prefix):
            for key in self._keys_under(start, prefix):
                try:
                    st = (self.root / key).stat()
                except FileNotFoundError:  # deleted since the walk saw it
                    continue
                yield ObjectInfo(key, st.st_size, st.st_mtime)

    def _keys_under(self, start: Path, prefix: str) -> Iterator[str]:
        """Keys under ``start`` matching ``prefix``; skips in-flight temp files and non-matching subtrees."""
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            dirnames[:] = [d for d in dirnames if _may_match(rel_dir + d + "/", prefix)]
            for name in filenames:
                key = rel_dir + name
                if not name.startswith(TMP_PREFIX) and key.startswith(prefix):
                    yield key

    def _prune_empty_dirs(self, start: Path, prefix: str) -> None:
        """Remove directories left empty under the prefix, bottom-up (best effort: a writer may refill one)."""
        if not start.is_dir():
            return
        for dirpath, _dirnames, _files in os.walk(start, topdown=False):
            path = Path(dirpath)
            rel = path.relative_to(self.root).as_posix() + "/"
            if path != self.root and rel.startswith(prefix):
                with suppress(OSError):
                    path.rmdir()

    def presigned_put(self, key: str, expires_s: int) -> str | None:
        """Local disk has no URL to hand out: uploads go through the API."""
        check_key(key)
        return None

    def ping(self) -> bool:
        return self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)


def _may_match(dir_key: str, prefix: str) -> bool:
    """True if keys under ``dir_key`` (ends with ``/``) can start with ``prefix``."""
    return dir_key.startswith(prefix) or prefix.startswith(dir_key)


@contextmanager
def _os_errors(key: str) -> Iterator[None]:
    """Translate filesystem errors about the object itself; errors reading the caller's stream pass through."""
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
        raise StorageError("not_found", f"{key}: {e.strerror or e}") from e
    except PermissionError as e:
        raise StorageError("denied", f"{key}: {e.strerror or e}") from e


# --------------------------------------------------------------------------- S3 / MinIO

_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "NotFound", "NoSuchUpload", "ResourceNotFound"})
_DENIED = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "AccountProblem",
    "InvalidBucketName", "BucketAlreadyExists", "ExpiredToken", "InvalidToken",
})


def translate_s3_error(exc: BaseException, what: str = "") -> StorageError | None:
    """The StorageError for an SDK/urllib3 exception, or None if it is not a storage failure."""
    import urllib3.exceptions
    from minio.error import InvalidResponseError, S3Error, ServerError

    where = f"{what}: " if what else ""
    if isinstance(exc, S3Error):
        code = exc.code or ""
        if code in _NOT_FOUND:
            return StorageError("not_found", f"{where}{code}")
        if code in _DENIED:
            return StorageError("denied", f"{where}{code}: {exc.message}")
        return StorageError("unavailable", f"{where}{code}: {exc.message}")
    if isinstance(exc, ServerError):
        if exc.status_code in (401, 403):
            return StorageError("denied", f"{where}HTTP {exc.status_code}")
        return StorageError("unavailable", f"{where}HTTP {exc.status_code}")
    if isinstance(exc, InvalidResponseError | urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return StorageError("unavailable", f"{where}{type(exc).__name__}: {exc}")
    return None


@contextmanager
def _s3_errors(what: str = "") -> Iterator[None]:
    try:
        yield
    except Exception as e:
        err = translate_s3_error(e, what)
        if err is None:
            raise
        raise err from e


class _ObjectStream(io.RawIOBase):
    """A GET response as a raw stream whose close() also returns the connection to the pool."""

    def __init__(self, response: Any, key: str) -> None:
        self._resp = response
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        with _s3_errors(self._key):
            data = self._resp.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            with suppress(Exception):
                self._resp.close()
                self._resp.release_conn()
        super().close()


def _split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """Accept ``host:port`` or ``http(s)://host:port``; the scheme, when given, decides ``secure``."""
    if "://" not in endpoint:
        return endpoint.rstrip("/"), secure
    parts = urlsplit(endpoint)
    if parts.path not in ("", "/"):
        raise ValueError(f"S3 endpoint {endpoint!r} must not have a path")
    return parts.netloc, parts.scheme == "https"


class MinioStorage:
    """Objects in one S3 bucket through the ``minio`` SDK (scale-out mode: MinIO, or any S3 server).

    The bucket is created on first use, not in ``__init__``, so the API can start (and report
    unhealthy through ``ping``) while the object server is still coming up. ``public_endpoint``
    signs presigned URLs for the host portals can reach, when it differs from the internal one.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        *,
        public_endpoint: str | None = None,
        retries: int = 3,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        from minio import Minio
        from minio.helpers import check_bucket_name

        check_bucket_name(bucket)  # ValueError now, not at the first upload
        host, secure = _split_endpoint(endpoint, secure)
        self.bucket = bucket
        self.region = region
        http = _http_client(retries, connect_timeout_s, read_timeout_s)
        self._client = Minio(host, access_key, secret_key, secure=secure, region=region, http_client=http)
        self._signer = self._client
        if public_endpoint:
            pub_host, pub_secure = _split_endpoint(public_endpoint, secure)
            # region given so signing never makes a network call to a host this process may not reach
            self._signer = Minio(pub_host, access_key, secret_key, secure=pub_secure,
                                 region=region or "us-east-1", http_client=http)
        self._ready = False
        self._lock = threading.Lock()

    def _ensure_bucket(self) -> None:
        """Create the bucket once per process; a concurrent creator winning the race is fine."""
        if self._ready:
            return
        from minio.error import S3Error

        with self._lock:
            if self._ready:
                return
            with _s3_errors(self.bucket):
                if not self._client.bucket_exists(self.bucket):
                    try:
                        self._client.make_bucket(self.bucket, location=self.region)
                    except S3Error as e:
                        if e.code != "BucketAlreadyOwnedByYou":
                            raise
            self._ready = True

    def put(self, key: str, stream: IO[bytes], length: int | None = None, content_type: str = "") -> None:
        check_key(key)
        self._ensure_bucket()
        size, part = (length, 0) if length is not None else (-1, PART_SIZE)
        with _s3_errors(key):
            self._client.put_object(self.bucket, key, stream, size, part_size=part,
                                    content_type=content_type or "application/octet-stream")

    def get(self, key: str) -> IO[bytes]:
        check_key(key)
        with _s3_errors(key):
            resp = self._client.get_object(self.bucket, key)
        return io.BufferedReader(_ObjectStream(resp, key), CHUNK)

    def exists(self, key: str) -> bool:
        check_key(key)
        try:
            with _s3_errors(key):
                self._client.stat_object(self.bucket, key)
        except StorageError as e:
            if e.code == "not_found":
                return False
            raise
        return True

    def delete_prefix(self, prefix: str) -> int:
        """List and batch-delete (``remove_objects`` sends 1000 keys per request); errors are raised, not lost."""
        from minio.deleteobjects import DeleteObject

        check_key(prefix, prefix=True)
        listed = 0

        def to_delete() -> Iterator[DeleteObject]:
            nonlocal listed
            for obj in self._client.list_objects(self.bucket, prefix=prefix, recursive=True):
                listed += 1
                yield DeleteObject(obj.object_name)

        try:
            with _s3_errors(prefix):
                errors = list(self._client.remove_objects(self.bucket, to_delete()))  # lazy: must be consumed
        except StorageError as e:
            if e.code == "not_found":  # no bucket yet: nothing to delete
                return 0
            raise
        if errors:
            code: StorageCode = "denied" if any(e.code in _DENIED for e in errors) else "unavailable"
            first = errors[0]
            raise StorageError(code, f"{prefix}: {len(errors)} of {listed} not deleted ({first.code} {first.name})")
        return listed

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """ListObjectsV2, 1000 keys a page, lazily; no bucket yet lists nothing."""
        check_key(prefix, prefix=True)
        try:
            with _s3_errors(prefix):
                for obj in self._client.list_objects(self.bucket, prefix=prefix, recursive=True):
                    modified = obj.last_modified.timestamp() if obj.last_modified else 0.0
                    yield ObjectInfo(obj.object_name or "", int(obj.size or 0), modified)
        except StorageError as e:
            if e.code != "not_found":
                raise

    def presigned_put(self, key: str, expires_s: int) -> str | None:
        check_key(key)
        if not 1 <= expires_s <= 7 * 24 * 3600:
            raise ValueError("expires_s must be between 1 second and 7 days (the S3 limit)")
        self._ensure_bucket()
        with _s3_errors(key):
            return self._signer.presigned_put_object(self.bucket, key, expires=timedelta(seconds=expires_s))

    def ping(self) -> bool:
        """Server reachable and bucket present (created if missing)."""
        try:
            self._ready = False  # re-check: the bucket may have been deleted behind our back
            self._ensure_bucket()
        except StorageError:
            return False
        return True


def _http_client(retries: int, connect_timeout_s: float, read_timeout_s: float) -> Any:
    """Like minio's default pool, but with bounded timeouts so ``ping`` cannot hang for minutes."""
    import certifi
    import urllib3
    from urllib3.util import Retry, Timeout

    return urllib3.PoolManager(
        timeout=Timeout(connect=connect_timeout_s, read=read_timeout_s),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


# --------------------------------------------------------------------------- factory

def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``GATECHECK_DATA_DIR``, else ``~/.gatecheck`` (same default as service.settings)."""
    env = os.environ if env is None else env
    return Path(env.get("GATECHECK_DATA_DIR") or Path.home() / ".gatecheck")


def storage_from_env(env: Mapping[str, str] | None = None) -> LocalStorage | MinioStorage:
    """Build the configured backend. MinIO credentials are required: no built-in default keys."""
    env = os.environ if env is None else env
    kind = env.get("GATECHECK_STORAGE", "local").strip().lower()
    if kind == "local":
        return LocalStorage(default_data_dir(env) / "objects")
    if kind == "minio":
        endpoint = env.get("GATECHECK_S3_ENDPOINT", "")
        access, secret = env.get("GATECHECK_S3_ACCESS_KEY", ""), env.get("GATECHECK_S3_SECRET_KEY", "")
        if not (endpoint and access and secret):
            raise ValueError("GATECHECK_STORAGE=minio needs GATECHECK_S3_ENDPOINT, GATECHECK_S3_ACCESS_KEY "
                             "and GATECHECK_S3_SECRET_KEY")
        return MinioStorage(
            endpoint, access, secret,
            bucket=env.get("GATECHECK_S3_BUCKET") or "gatecheck",
            secure=env.get("GATECHECK_S3_SECURE", "0").strip().lower() in ("1", "true", "yes"),
            region=env.get("GATECHECK_S3_REGION") or None,
            public_endpoint=env.get("GATECHECK_S3_PUBLIC_ENDPOINT") or None,
        )
    raise ValueError(f"GATECHECK_STORAGE must be 'local' or 'minio', not {kind!r}")
