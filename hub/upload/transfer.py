"""The bucket, through google-cloud-storage: one blocking call per method, run in the uploader's threads.

Every upload sends our MD5 (the bucket refuses bytes that do not match it),
carries our MD5, mtime, session and unit in the object's metadata, and names
the generation it expects (`if_generation_match`: 0 for a new object), so a
retry never overwrites an object newer than the one we know. Files above
`chunk_kib` go up resumably in chunks. Errors come out as the named
exceptions below: `BucketUnreachable` (transient: try again later) or a
per-file one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from hub.upload.hashing import b64_of_hex, hex_of_b64
from hub.upload.settings import StorageConfig, UploadConfig, key_file_problem
from lecis.errors import LabedgeError

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
TRANSIENT_HTTP = (gexc.TooManyRequests, gexc.InternalServerError, gexc.BadGateway, gexc.ServiceUnavailable,
                  gexc.GatewayTimeout, gexc.RequestRangeNotSatisfiable)


class UploadFailed(LabedgeError):
    """One file could not go up; `transient` says whether trying again later may help."""

    transient = False


class BucketUnreachable(UploadFailed):
    """The bucket did not answer (offline, timeout, 5xx): everything stays pending and is tried again."""

    transient = True


class BucketRefused(UploadFailed):
    """The bucket answered no (permissions, no such bucket, bad request): the message says which."""


class CredentialsRefused(BucketRefused):
    """The key file is unusable (readable by others, missing) or no default credentials exist."""


class ObjectConflict(UploadFailed):
    """The object's generation is not the one expected: someone (or an earlier try) wrote it meanwhile."""


class ChecksumMismatch(UploadFailed):
    """The bytes sent do not have the MD5 we computed: the file changed while it went up."""

    transient = True


@dataclass(frozen=True)
class StoredObject:
    name: str
    generation: int
    md5: str | None  # hex
    metadata: Mapping[str, str]


def make_client(storage_cfg: StorageConfig, env: Mapping[str, str]) -> Any:
    """A storage client: the emulator named by STORAGE_EMULATOR_HOST, a key file, or default credentials."""
    emulator = env.get(EMULATOR_ENV)
    if emulator:
        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return storage.Client(project=storage_cfg.project or "labedge", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                              client_options={"api_endpoint": endpoint})
    if storage_cfg.credentials is not None:
        why = key_file_problem(storage_cfg.credentials)
        if why:
            raise CredentialsRefused(why)
        try:
            return storage.Client.from_service_account_json(str(storage_cfg.credentials),
                                                            project=storage_cfg.project)
        except (ValueError, KeyError, OSError) as e:
            raise CredentialsRefused(f"credentials file {storage_cfg.credentials} is not a service-account "
                                     f"key ({e}); download a JSON key for the hub's service account") from e
    try:
        return storage.Client(project=storage_cfg.project)
    except auth_exc.DefaultCredentialsError as e:
        raise CredentialsRefused(
            "no credentials for the bucket: set storage.credentials in hub.yaml to a service-account key "
            f"file, or provide application default credentials (GOOGLE_APPLICATION_CREDENTIALS) ({e})") from e


def _translate(e: BaseException, what: str) -> UploadFailed:
    if isinstance(e, UploadFailed):
        return e
    if isinstance(e, gexc.RetryError):  # the library's own retries ran out: name the last cause
        return BucketUnreachable(f"{what}: the bucket is unreachable ({str(e.cause or e)[:200]})")
    if isinstance(e, gexc.PreconditionFailed):
        return ObjectConflict(f"{what}: the bucket holds a newer generation than expected")
    offline = (requests.ConnectionError, requests.Timeout, auth_exc.TransportError, ConnectionError,
               TimeoutError)
    if isinstance(e, TRANSIENT_HTTP) or isinstance(e, offline):
        return BucketUnreachable(f"{what}: the bucket is unreachable ({type(e).__name__}: {str(e)[:200]})")
    if isinstance(e, gexc.BadRequest | gexc.Conflict) and "md5" in str(e).lower():
        return ChecksumMismatch(f"{what}: the bucket refused the bytes: MD5 differs (the file changed)")
    if isinstance(e, gexc.Forbidden | gexc.Unauthorized):
        return BucketRefused(f"{what}: the bucket refused the hub's credentials ({str(e)[:200]}); grant the "
                             "service account object create/get/list on the bucket, and delete if a changed "
                             "file must replace its object (docs/cloud.md)")
    if isinstance(e, gexc.NotFound):
        return BucketRefused(f"{what}: no such bucket ({str(e)[:200]}); create it or fix storage.bucket")
    if isinstance(e, gexc.GoogleAPICallError):
        return BucketRefused(f"{what}: the bucket refused it ({str(e)[:200]})")
    if isinstance(e, CredentialsRefused | auth_exc.GoogleAuthError):
        return CredentialsRefused(f"{what}: {e}")
    return BucketUnreachable(f"{what}: {type(e).__name__}: {str(e)[:200]}")


class TransferStopped(BucketUnreachable):
    """The hub is stopping; the file stays pending and goes up after the restart."""


class _Stoppable:
    """A file for the client to read that refuses to go on once the hub stops (a long upload ends quickly)."""

    def __init__(self, fh: Any, stopping: threading.Event) -> None:
        self._fh, self._stopping = fh, stopping

    def read(self, n: int = -1) -> bytes:
        if self._stopping.is_set():
            raise TransferStopped("the hub is stopping")
        data: bytes = self._fh.read(n)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._fh.seek(offset, whence))

    def tell(self) -> int:
        return int(self._fh.tell())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


class Bucket:
    """The session bucket; the client is made on first use (in a worker thread: credentials may need I/O)."""

    def __init__(self, storage_cfg: StorageConfig, upload: UploadConfig, env: Mapping[str, str] | None = None,
                 client: Any = None) -> None:
        self.config = storage_cfg
        self.upload_config = upload
        self._env = dict(os.environ if env is None else env)
        self._client = client
        self._bucket: Any = None
        self.stopping = threading.Event()  # set when the hub stops: a transfer ends at its next read
        # The library's own retries stay short: a longer outage is the uploader's backoff, on its clock.
        self._retry = Retry(initial=0.2, maximum=2.0, multiplier=2.0, timeout=min(upload.timeout_s, 10.0))

    def _b(self) -> Any:
        if self._bucket is None:
            if self._client is None:
                self._client = make_client(self.config, self._env)
            self._bucket = self._client.bucket(self.config.bucket)
        return self._bucket

    def upload(self, path: Path, name: str, md5_hex: str, size: int, metadata: Mapping[str, str],
               if_generation_match: int) -> StoredObject:
        """Send the first `size` bytes of `path` as `name`; OSError when the file cannot be read."""
        what = f"gs://{self.config.bucket}/{name}"
        with open(path, "rb") as raw:  # an unreadable or vanished file raises OSError here: the caller's
            fh = _Stoppable(raw, self.stopping)
            try:
                chunk = self.upload_config.chunk_kib * 1024
                blob = self._b().blob(name, chunk_size=chunk if size > chunk else None)
                blob.md5_hash = b64_of_hex(md5_hex)  # the bucket checks the bytes against it
                blob.metadata = dict(metadata)
                blob.upload_from_file(fh, size=size, if_generation_match=if_generation_match, checksum=None,
                                      retry=self._retry, timeout=self.upload_config.timeout_s,
                                      content_type="application/octet-stream")
            except Exception as e:
                raise _translate(e, what) from e
        got = hex_of_b64(blob.md5_hash)
        stored = StoredObject(name, int(blob.generation or 0), got, blob.metadata or {})
        if got is not None and got != md5_hex:
            err = ChecksumMismatch(f"{what}: stored with MD5 {got}, not {md5_hex} (the file changed)")
            err.stored = stored  # type: ignore[attr-defined]
            raise err
        return stored

    def get(self, name: str) -> StoredObject | None:
        try:
            blob = self._b().get_blob(name, retry=self._retry, timeout=self.upload_config.timeout_s)
        except Exception as e:
            raise _translate(e, f"gs://{self.config.bucket}/{name}") from e
        if blob is None:
            return None
        return StoredObject(name, int(blob.generation or 0), hex_of_b64(blob.md5_hash), blob.metadata or {})

    def list(self, prefix: str) -> dict[str, StoredObject]:
        """Every object under `prefix`, by name."""
        try:
            blobs = self._b().client.list_blobs(self.config.bucket, prefix=prefix, retry=self._retry,
                                                timeout=self.upload_config.timeout_s)
            return {b.name: StoredObject(b.name, int(b.generation or 0), hex_of_b64(b.md5_hash),
                                         b.metadata or {}) for b in blobs}
        except Exception as e:
            raise _translate(e, f"gs://{self.config.bucket}/{prefix}") from e
