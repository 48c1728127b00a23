"""S3 store (``s3://bucket/optional/prefix``), for AWS and S3-compatible servers.

A writer spools its chunks to a private temp file, so memory stays flat whatever the size.
An object that stays below ``multipart_threshold`` is hashed on commit, compared with the
caller's SHA-256 and sent with one ``PutObject`` carrying ``ChecksumSHA256`` (S3 refuses
bytes that do not match it) and ``Metadata={"sha256": <hex>}``. An object that reaches
the threshold becomes a multipart upload at once (:mod:`archiver.store.s3parts`): its parts
go up while the rest is still being downloaded, each with the CRC32 of the bytes written for
it (the bytes the caller hashed), so S3 refuses a part changed in the spool or on the way;
the upload is completed on commit. Such an object carries no SHA-256 metadata (its upload
begins before the digest is known); the manifest lists it and ``archiver verify`` checks it
from S3 itself. S3 only shows an object once its upload completes, which gives the
all-or-nothing rule of the contract.

:class:`S3Protection` adds to every object written (artifacts, manifests, ledger entries) an
Object Lock retention (mode and retain-until date, counted from the write), a legal hold,
server-side encryption and a storage class, on the single ``PutObject`` and on the multipart
upload alike. ``check`` (run at start-up) makes sure the bucket exists and, when retention or
a legal hold is asked for, that versioning and Object Lock are enabled on it. In a versioned
bucket a write to an existing key adds a version and never touches the locked ones.

``put_bytes_if_absent`` is a conditional ``PutObject`` (``If-None-Match: *``): S3 answers
412 when the key exists, or 409 when another conditional write to it is under way; both
mean "someone else got there" and return False.

boto3 is synchronous: every call runs in a worker thread of the store's own, so slow S3
calls never hold up the threads the rest of the daemon hashes and writes in; parts have a
pool of their own (``max_concurrency`` uploads at once across all objects, each object
queueing at most that many, so objects share the pool fairly). Credentials
come from boto3's default chain and are never kept on this object, printed, or put in an
error message. botocore's ``standard`` retry mode already retries throttling, 5xx and
connection errors a few times; what still fails becomes a StoreError
(:mod:`archiver.store.s3errors`) whose message says when it is transient.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import boto3
import botocore.exceptions
from botocore.config import Config

from archiver.errors import StoreError
from archiver.keys import check_key, check_prefix
from archiver.log import get_logger
from archiver.model import rfc3339, strip_query
from archiver.store import ObjectWriter
from archiver.store.localfile import LocalFileWriter
from archiver.store.s3bucket import CONDITION_FAILED, CONTROL_FOLDER, BucketTraits, inspect_bucket
from archiver.store.s3errors import BOTO_ERRORS, error_code, http_status, s3_error
from archiver.store.s3parts import PartChecksums, StreamingUpload
from archiver.store.s3promises import (
    S3Protection,
    check_encryption,
    check_stored_bytes,
    md5_base64,
    new_md5,
)
from archiver.store.s3versions import oldest_version, version_counts, withdraw

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

MIB = 1024 * 1024
SPOOL_PREFIX = "archiver-spool-"
CHUNK_SIZE = MIB
HASH_BLOCK = 4 * MIB

_P = ParamSpec("_P")
_T = TypeVar("_T")

log = get_logger(__name__)

__all__ = ["S3Protection", "S3Store"]


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        multipart_threshold: int = 64 * MIB,
        multipart_chunksize: int = 8 * MIB,
        max_concurrency: int = 8,
        spool_dir: str | os.PathLike[str] | None = None,
        chunk_size: int = CHUNK_SIZE,
        protection: S3Protection | None = None,
        single_writer: bool = False,
        read_only: bool = False,
    ) -> None:
        self._bucket = bucket
        self._protection = protection or S3Protection()
        self._single_writer = single_writer
        self._read_only = read_only  # ``check`` then writes no probe
        # Until ``check`` says otherwise: conditional creates honoured, nothing versioned.
        self._traits = BucketTraits(versioned=False, conditional_create=True)
        self._prefix = prefix.strip("/")
        check_prefix(self._prefix)
        self._key_prefix = f"{self._prefix}/" if self._prefix else ""
        self._multipart_threshold = multipart_threshold
        self._part_bytes = multipart_chunksize
        self._spool_dir = Path(spool_dir) if spool_dir else Path(tempfile.gettempdir())
        try:
            self._spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"S3 store: cannot use {self._spool_dir} as spool folder: "
                f"{exc.strerror or type(exc).__name__}"
            ) from exc
        self._chunk_size = chunk_size
        self.description = f"s3://{bucket}/{self._prefix}".removesuffix("/")
        if endpoint_url:
            self.description += f" at {strip_query(endpoint_url)}"
        self._client = _make_client(endpoint_url, region, max_concurrency)
        self._max_concurrency = max_concurrency
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="archiver-s3")
        self._part_pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="archiver-s3-part")
        self._closed = False

    def __repr__(self) -> str:
        return f"S3Store({self.description!r})"

    @asynccontextmanager
    async def open_writer(
        self, key: str, *, content_type: str | None = None, durable: bool = True
    ) -> AsyncIterator[ObjectWriter]:
        # An object S3 has acknowledged is durable: ``durable`` changes nothing here.
        check_key(key)
        writer = _SpoolWriter(self, key, content_type)
        try:
            yield writer
        finally:
            await writer.abort()

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> None:
        check_key(key)
        await self._call("PutObject", key, self._put_data, key, data, content_type, None)

    async def put_bytes_if_absent(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> bool:
        check_key(key)
        if not self._traits.conditional_create:
            create = (
                self._create_by_version_order if self._traits.versioned else self._create_if_unseen
            )
            return await self._call("PutObject", key, create, key, data, content_type)
        try:
            await self._call("PutObject", key, self._put_data, key, data, content_type, "*")
        except StoreError as error:
            if http_status(error.__cause__) in CONDITION_FAILED:
                return False
            raise
        return True

    async def read_created(self, key: str) -> bytes:
        """What ``put_bytes_if_absent``'s winner wrote at ``key``: on a versioned bucket the
        oldest version, not the newest (see :mod:`archiver.store.s3versions`); a version
        written over it is there for ``extra_versions`` to report, not to be read."""
        if not self._traits.versioned:
            return await self.read_bytes(key)
        check_key(key)
        version = await self._call(
            "ListObjectVersions", key, oldest_version, self._client, self._bucket, self._full(key)
        )
        if version is None:
            return await self.read_bytes(key)
        return b"".join([chunk async for chunk in self._iter_version(key, version)])

    async def extra_versions(self, prefix: str) -> Mapping[str, int]:
        """Keys under ``prefix`` that have more than one version, with their count."""
        check_prefix(prefix)
        if not self._traits.versioned:
            return {}
        counts = await self._call(
            "ListObjectVersions",
            prefix,
            version_counts,
            self._client,
            self._bucket,
            self._full(prefix),
        )
        skip = len(self._key_prefix)
        return {key[skip:]: count for key, count in sorted(counts.items()) if count > 1}

    async def unkept_promises(self, key: str) -> list[str]:
        """What the server says ``key`` lacks of the encryption, retention and legal hold
        this store was configured to give every object."""
        protection = self._protection
        if protection.sse is None and not protection.needs_object_lock:
            return []
        check_key(key)
        head = await self._call(
            "HeadObject", key, self._client.head_object, Bucket=self._bucket, Key=self._full(key)
        )
        return protection.unmet_on_head(head)

    async def read_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.iter_bytes(key)])

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        check_key(key)
        async for chunk in self._iter_version(key, None):
            yield chunk

    async def _iter_version(self, key: str, version: str | None) -> AsyncIterator[bytes]:
        which = {"VersionId": version} if version else {}
        response = await self._call(
            "GetObject",
            key,
            self._client.get_object,
            Bucket=self._bucket,
            Key=self._full(key),
            **which,  # type: ignore[arg-type]
        )
        body = response["Body"]
        try:
            while chunk := await self._call("GetObject", key, body.read, self._chunk_size):
                yield chunk
        finally:
            await self._in_pool(body.close)

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def size(self, key: str) -> int | None:
        check_key(key)
        try:
            head = await self._call(
                "HeadObject",
                key,
                self._client.head_object,
                Bucket=self._bucket,
                Key=self._full(key),
            )
        except StoreError as error:
            if http_status(error.__cause__) == 404:
                return None
            raise
        return head["ContentLength"]

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        keys = await self._call("ListObjectsV2", prefix, self._list_keys, self._full(prefix))
        for key in keys:
            if not key.startswith(CONTROL_FOLDER):  # the store's own probes
                yield key

    async def object_info(self, key: str) -> Mapping[str, str]:
        check_key(key)
        head = await self._call(
            "HeadObject", key, self._client.head_object, Bucket=self._bucket, Key=self._full(key)
        )
        info = {
            "version_id": head.get("VersionId"),
            "object_lock_mode": head.get("ObjectLockMode"),
            "object_lock_retain_until": (
                rfc3339(head["ObjectLockRetainUntilDate"])
                if "ObjectLockRetainUntilDate" in head
                else None
            ),
            "legal_hold": head.get("ObjectLockLegalHoldStatus"),
            "server_side_encryption": head.get("ServerSideEncryption"),
            "sse_kms_key_id": head.get("SSEKMSKeyId"),
            # S3 leaves the header out for STANDARD.
            "storage_class": head.get("StorageClass", "STANDARD"),
        }
        return {name: str(value) for name, value in info.items() if value not in (None, "null")}

    async def check(self) -> None:
        self._traits = await self._call(
            "start-up check",
            "",
            inspect_bucket,
            self._client,
            self._bucket,
            self._key_prefix,
            self._protection,
            single_writer=self._single_writer,
            probe_writes=not self._read_only,
        )
        if not self._traits.conditional_create:
            log.warning(
                "s3_conditional_writes_ignored",
                store=self.description,
                races_decided_by="version order" if self._traits.versioned else "single writer",
            )
        if self._protection.object_lock_mode and not self._traits.covers(self._protection):
            # Servers that ignore Object Lock headers on multipart uploads (Ceph RGW, moto)
            # leave each new version unlocked until the store sets its retention.
            log.info(
                "s3_bucket_without_default_retention",
                store=self.description,
                advice="a default retention at least as long as object_lock_days locks "
                "every object from the moment it is created",
            )

    @property
    def traits(self) -> BucketTraits:
        """What the start-up check found out about the bucket and its server."""
        return self._traits

    async def cleanup_incomplete(self, *, older_than: float = 0.0) -> int:
        cutoff = time.time() - older_than
        try:
            uploads = await self._call(
                "ListMultipartUploads", "", self._abort_stale_uploads, cutoff
            )
        except StoreError as error:
            if error_code(error.__cause__) != "NotImplemented":
                raise
            log.warning(
                "incomplete_uploads_not_cleaned",
                store=self.description,
                reason="the server does not list multipart uploads (NotImplemented)",
            )
            uploads = 0
        try:
            spools = await asyncio.to_thread(self._remove_stale_spools, cutoff)
        except OSError as exc:
            raise StoreError(
                f"S3 store: cannot clean up spool files in {self._spool_dir}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from exc
        return uploads + spools

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for pool in (self._part_pool, self._pool):  # what is running ends first
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        await asyncio.to_thread(self._client.close)

    def _start_upload(
        self, key: str, spool: Path, checksums: PartChecksums, content_type: str | None
    ) -> StreamingUpload:
        create_args: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self._full(key),
            "ChecksumAlgorithm": "CRC32",
            **self._protection.request_args(datetime.now(UTC)),
        }
        if content_type:
            create_args["ContentType"] = content_type
        return StreamingUpload(
            client=self._client,
            pool=self._pool,
            part_pool=self._part_pool,
            bucket=self._bucket,
            key=self._full(key),
            spool=spool,
            checksums=checksums,
            create_args=create_args,
            parts_in_flight=self._max_concurrency,
            protection=self._protection,
        )

    # -- called from worker threads -------------------------------------------------------

    def _put_spool(self, spool: Path, key: str, sha256: str, content_type: str | None) -> None:
        digest, md5 = _file_digests(spool)
        if digest != sha256.lower():
            raise StoreError(
                f"S3 store: {key!r}: the SHA-256 given does not match the bytes written"
            )
        with spool.open("rb") as body:
            self._put(key, body, sha256, md5, content_type, None)

    def _put_data(
        self,
        key: str,
        data: bytes,
        content_type: str | None,
        if_none_match: str | None,
    ) -> dict[str, Any]:
        md5 = new_md5()
        md5.update(data)
        digest = hashlib.sha256(data).hexdigest()
        return self._put(key, data, digest, md5.digest(), content_type, if_none_match)

    def _put(
        self,
        key: str,
        body: Any,
        sha256: str,
        md5: bytes,
        content_type: str | None,
        if_none_match: str | None,
    ) -> dict[str, Any]:
        """One PutObject, then every promise checked from the server's answer."""
        now = datetime.now(UTC)
        request = self._put_request(key, sha256, content_type, now)
        request["Body"] = body
        request["ContentMD5"] = md5_base64(md5)
        if if_none_match:
            request["IfNoneMatch"] = if_none_match
        answer = cast("dict[str, Any]", self._client.put_object(**request))
        what = f"S3 PutObject of s3://{self._bucket}/{self._full(key)}"
        try:
            check_stored_bytes(answer, md5.hex(), what=what)
        except StoreError:
            # A server that checks no digest kept changed bytes: they go again (in a
            # versioned bucket that version, retention permitting), as a write that failed.
            if not self._withdraw_written(key, answer.get("VersionId")):
                log.error("s3_changed_bytes_kept", key=self._full(key), reason="retention")
            raise
        check_encryption(answer, protection=self._protection, what=what)
        self._confirm_lock(key, answer.get("VersionId"), now)
        return answer

    def _withdraw_written(self, key: str, version_id: str | None) -> bool:
        if version_id:
            return withdraw(self._client, self._bucket, self._full(key), version_id)
        with contextlib.suppress(*BOTO_ERRORS):
            self._client.delete_object(Bucket=self._bucket, Key=self._full(key))
            return True
        return False

    def _create_by_version_order(self, key: str, data: bytes, content_type: str | None) -> bool:
        """``put_bytes_if_absent`` where the server ignores If-None-Match on a versioned
        bucket: the oldest version wins (see :mod:`archiver.store.s3versions`).

        The version is written locked, as any other: evidence is never unlocked, not even
        for a moment. A writer that lost withdraws its version where it may; where retention
        keeps it, the winner's bytes go on top of it, so whoever reads the newest version
        reads the object too.
        """
        full = self._full(key)
        if oldest_version(self._client, self._bucket, full) is not None:
            return False  # seen before writing: no version of ours to withdraw
        mine = self._put_data(key, data, content_type, "*").get("VersionId")
        if not mine:
            raise StoreError(f"S3 PutObject of s3://{self._bucket}/{full}: no version id")
        winner = oldest_version(self._client, self._bucket, full)
        if winner == mine:
            return True
        if not withdraw(self._client, self._bucket, full, mine) and winner is not None:
            response = self._client.get_object(Bucket=self._bucket, Key=full, VersionId=winner)
            self._put_data(key, response["Body"].read(), content_type, None)
            log.warning("s3_lost_create_race_version_kept", key=full, version_id=mine)
        return False

    def _create_if_unseen(self, key: str, data: bytes, content_type: str | None) -> bool:
        """``put_bytes_if_absent`` on a server that honours neither If-None-Match nor
        versions, allowed with ``single_writer``: this process's own writes are already one
        at a time (the ledger appends under a lock)."""
        try:
            self._client.head_object(Bucket=self._bucket, Key=self._full(key))
        except botocore.exceptions.ClientError as exc:
            if http_status(exc) != 404:
                raise
            self._put_data(key, data, content_type, None)
            return True
        return False

    def _confirm_lock(self, key: str, version_id: str | None, now: datetime) -> None:
        """The retention and legal hold asked for, as a HEAD of the version written shows."""
        protection = self._protection
        if not protection.needs_object_lock:
            return
        which = {"VersionId": version_id} if version_id else {}
        head = self._client.head_object(Bucket=self._bucket, Key=self._full(key), **which)  # type: ignore[arg-type]
        unmet = protection.unmet_lock(head, retain_until=protection.retain_until(now))
        if unmet:
            raise StoreError(
                f"S3 store: s3://{self._bucket}/{self._full(key)}: {'; '.join(unmet)}; "
                "the object must not be counted as archived"
            )

    def _lock_version(self, key: str, version_id: str | None) -> None:
        """Set retention and legal hold on the version a multipart upload made, then check
        them.

        A multipart upload sent them with CreateMultipartUpload already, which S3 honours;
        Ceph RGW and moto ignore them there, so they are set explicitly too. Until
        then such a server leaves the new version unlocked, unless the bucket's default
        retention locks it from the start (see :meth:`BucketTraits.covers`); the manifest
        that lists the object is written only after the lock is confirmed. The date is a
        moment later than the first one: S3 allows extending a retention, never shortening.
        """
        now = datetime.now(UTC)
        protection = self._protection.request_args(now)
        which = {"VersionId": version_id} if version_id else {}
        if "ObjectLockMode" in protection:
            self._client.put_object_retention(
                Bucket=self._bucket,
                Key=self._full(key),
                Retention={
                    "Mode": protection["ObjectLockMode"],
                    "RetainUntilDate": protection["ObjectLockRetainUntilDate"],
                },
                ChecksumAlgorithm="SHA256",
                **which,  # type: ignore[arg-type]
            )
        if "ObjectLockLegalHoldStatus" in protection:
            self._client.put_object_legal_hold(
                Bucket=self._bucket,
                Key=self._full(key),
                LegalHold={"Status": "ON"},
                ChecksumAlgorithm="SHA256",
                **which,  # type: ignore[arg-type]
            )
        self._confirm_lock(key, version_id, now)

    def _list_keys(self, full_prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=full_prefix):
            keys.extend(item["Key"][len(self._key_prefix) :] for item in page.get("Contents", []))
        return sorted(keys)

    def _abort_stale_uploads(self, cutoff: float) -> int:
        cutoff_time = datetime.fromtimestamp(cutoff, UTC)
        aborted = 0
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._key_prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] <= cutoff_time:
                    self._client.abort_multipart_upload(
                        Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted

    def _remove_stale_spools(self, cutoff: float) -> int:
        removed = 0
        with os.scandir(self._spool_dir) as entries:
            for entry in entries:
                if (
                    entry.name.startswith(SPOOL_PREFIX)
                    and entry.is_file(follow_symlinks=False)
                    and entry.stat().st_mtime <= cutoff
                ):
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed

    # -- helpers --------------------------------------------------------------------------

    def _put_request(
        self, key: str, sha256: str, content_type: str | None, now: datetime
    ) -> PutObjectRequestTypeDef:
        request: PutObjectRequestTypeDef = {
            "Bucket": self._bucket,
            "Key": self._full(key),
            # The algorithm header too: Object Lock wants it (or Content-MD5) on every PUT.
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
            "Metadata": {"sha256": sha256.lower()},
        }
        if content_type:
            request["ContentType"] = content_type
        protection = self._protection.request_args(now)
        request.update(cast("PutObjectRequestTypeDef", protection))
        return request

    async def _call(
        self,
        operation: str,
        key: str,
        function: Callable[_P, _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run one blocking boto3 call in a worker thread and translate its errors."""
        try:
            return await self._in_pool(function, *args, **kwargs)
        except BOTO_ERRORS as exc:
            raise s3_error(operation, self._bucket, self._full(key), exc) from exc

    async def _in_pool(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        call = functools.partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _full(self, key: str) -> str:
        return self._key_prefix + key


class _SpoolWriter(LocalFileWriter):
    def __init__(self, store: S3Store, key: str, content_type: str | None) -> None:
        super().__init__(key=key, folder=store._spool_dir, prefix=SPOOL_PREFIX)
        self._store = store
        self._content_type = content_type
        self._checksums = PartChecksums(store._part_bytes)
        self._upload: StreamingUpload | None = None

    async def write(self, *pieces: bytes) -> None:
        await super().write(*pieces)
        if self._upload is None:
            if self._written < self._store._multipart_threshold or self.temp is None:
                return
            try:
                self._upload = self._store._start_upload(
                    self.key, self.temp, self._checksums, self._content_type
                )
            except OSError as exc:
                raise self.error("open", exc) from exc
        self._upload.offer()

    async def finish(self, *, sha256: str, size: int) -> None:
        spool = await self.in_thread(functools.partial(self.seal_sync, fsync=False))
        store = self._store
        try:
            if self._upload is None:
                await store._call(
                    "PutObject",
                    self.key,
                    store._put_spool,
                    spool,
                    self.key,
                    sha256,
                    self._content_type,
                )
            else:
                version_id = await self._upload.complete(size=size)
                if store._protection.needs_object_lock:
                    await store._call(
                        "PutObjectRetention",
                        self.key,
                        store._lock_version,
                        self.key,
                        version_id,
                    )
        finally:
            await asyncio.to_thread(spool.unlink, missing_ok=True)

    def wrote_sync(self, pieces: tuple[bytes, ...]) -> None:
        self._checksums.add(pieces)

    async def abort_more(self) -> None:
        if self._upload is not None:
            await self._upload.abort()

    def error(self, operation: str, exc: OSError) -> StoreError:
        return StoreError(
            f"S3 store: cannot {operation} the spool file for {self.key!r} in "
            f"{self._store._spool_dir}: {exc.strerror or type(exc).__name__}"
        )


def _make_client(endpoint_url: str | None, region: str | None, max_concurrency: int) -> S3Client:
    config = Config(
        retries={"mode": "standard"},
        # One connection per worker: calls, and parts, ``max_concurrency`` of each at once.
        max_pool_connections=2 * max_concurrency,
        # S3-compatible servers reached by endpoint_url rarely resolve bucket subdomains.
        s3={"addressing_style": "path"} if endpoint_url else None,
        # The store sends its own checksums on every write. botocore's default adds a CRC32
        # trailer to bodies it can, which some servers refuse (Ceph RGW over https: 411
        # MissingContentLength), and checks responses against checksums they may not have.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def _file_digests(path: Path) -> tuple[str, bytes]:
    """The SHA-256 (hex) and the MD5 (bytes) of a file, in one pass."""
    sha256, md5 = hashlib.sha256(), new_md5()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            sha256.update(block)
            md5.update(block)
    return sha256.hexdigest(), md5.digest()
