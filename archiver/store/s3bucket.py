"""The S3 store's start-up check: what the bucket is, and what its server really does.

Asked, not assumed, because S3-compatible servers differ where it matters (see docs/s3.md's
compatibility table):

* the bucket exists; with retention or a legal hold asked for, versioning and Object Lock
  are enabled on it, and its default retention (if any) is read;
* **conditional creates**: a ``PutObject`` with ``If-None-Match: *`` on a probe key that now
  exists must be refused (412). Ceph RGW ignores the header on versioned buckets, and
  s3rver everywhere; on a versioned bucket the store then decides races by version order
  (the oldest version of a key is its content), and without versioning it refuses to start
  unless ``single_writer`` says no other archiver writes to the bucket;
* **encryption**: the probe is written with the configured encryption, and the server's
  answer must say it was applied (Ceph RGW answers 200 and stores plain bytes over https).

The probe key lives under ``.archiver/`` beside the evidence, a folder no session key can
name; the store deletes the probe's versions afterwards where it may (a bucket's default
retention can keep them).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from archiver.errors import StoreError
from archiver.store.s3errors import BOTO_ERRORS, error_code, http_status, s3_error
from archiver.store.s3promises import S3Protection, check_stored_bytes, md5_base64, new_md5

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

CONTROL_FOLDER = ".archiver/"
PROBE_FOLDER = f"{CONTROL_FOLDER}probes/"
PROBE_BODY = b"archiver start-up probe\n"
# 412: the key exists; 409: another conditional write to the same key is in flight.
CONDITION_FAILED = frozenset({409, 412})


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketTraits:
    """What the start-up check found out about the bucket and its server."""

    versioned: bool
    conditional_create: bool
    default_retention: tuple[str, int] | None = None  # (mode, days) the bucket applies itself

    def covers(self, protection: S3Protection) -> bool:
        """Whether the bucket's default retention locks every new version at least as
        long as ``protection`` asks, from the moment it is created."""
        if self.default_retention is None or protection.object_lock_mode is None:
            return False
        mode, days = self.default_retention
        return mode == protection.object_lock_mode and days >= protection.object_lock_days


def inspect_bucket(
    client: S3Client,
    bucket: str,
    key_prefix: str,
    protection: S3Protection,
    *,
    single_writer: bool,
    probe_writes: bool = True,
) -> BucketTraits:
    """Run in a worker thread; raises StoreError naming what is missing or unsafe. Without
    ``probe_writes`` (for commands that only read) nothing is written, and conditional
    creates are taken as honoured."""
    where = f"S3 bucket {bucket!r}"
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        if http_status(exc) == 404:
            raise StoreError(f"{where} does not exist") from exc
        raise
    versioned = client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
    default_retention = None
    if protection.needs_object_lock:
        wanted = "[store] object_lock_mode/legal_hold ask for Object Lock"
        if not versioned:
            raise StoreError(f"{where} does not have versioning enabled, but {wanted}")
        lock = _object_lock_configuration(client, bucket)
        if lock.get("ObjectLockEnabled") != "Enabled":
            raise StoreError(f"{where} does not have Object Lock enabled, but {wanted}")
        default_retention = _default_retention(lock)
    if not probe_writes:
        return BucketTraits(
            versioned=versioned, conditional_create=True, default_retention=default_retention
        )
    # A key of its own: starts racing on one probe key would see each other's writes.
    probe_key = f"{key_prefix}{PROBE_FOLDER}{uuid.uuid4().hex}"
    conditional = _probe_conditional_create(client, bucket, probe_key, protection)
    if not conditional and not versioned and not single_writer:
        raise StoreError(
            f"{where}: the server ignores conditional writes (If-None-Match) and the bucket "
            "keeps no versions, so two archivers could both write one ledger entry; enable "
            "versioning on the bucket, or set [store] single_writer = true if no other "
            "archiver ever writes to it"
        )
    return BucketTraits(
        versioned=versioned, conditional_create=conditional, default_retention=default_retention
    )


def _object_lock_configuration(client: S3Client, bucket: str) -> dict[str, Any]:
    try:
        answer = client.get_object_lock_configuration(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "ObjectLockConfigurationNotFoundError":
            raise
        return {}
    return dict(answer.get("ObjectLockConfiguration", {}))


def _default_retention(lock: dict[str, Any]) -> tuple[str, int] | None:
    retention = lock.get("Rule", {}).get("DefaultRetention", {})
    mode = retention.get("Mode")
    days = retention.get("Days") or 365 * int(retention.get("Years") or 0)
    return (str(mode), int(days)) if mode and days else None


def _probe_conditional_create(
    client: S3Client, bucket: str, key: str, protection: S3Protection
) -> bool:
    """Whether a second conditional create of one key is refused; also checks encryption."""
    md5 = new_md5()
    md5.update(PROBE_BODY)
    request: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "Body": PROBE_BODY,
        "ContentMD5": md5_base64(md5.digest()),
        "IfNoneMatch": "*",
        **protection.encryption_args(),
    }
    if protection.storage_class is not None:
        request["StorageClass"] = protection.storage_class
    versions: list[str] = []
    try:
        refused = False
        for _ in range(2):
            try:
                answer = client.put_object(**request)
            except botocore.exceptions.ClientError as exc:
                if http_status(exc) in CONDITION_FAILED:
                    refused = True
                    break
                if error_code(exc) == "NotImplemented":
                    break  # the header itself is not supported
                raise _explained(exc, bucket, key, protection) from exc
            if answer.get("VersionId"):
                versions.append(str(answer["VersionId"]))
            what = f"S3 start-up probe s3://{bucket}/{key}"
            check_stored_bytes(answer, md5.hexdigest(), what=what)
            unmet = protection.unmet_encryption(answer)
            if unmet:
                raise StoreError(
                    f"S3 bucket {bucket!r}: {unmet} (a test write was stored unencrypted); "
                    "nothing can be archived with the encryption configured"
                )
        return refused
    finally:
        _delete_versions(client, bucket, key, versions)


def _explained(
    exc: botocore.exceptions.ClientError, bucket: str, key: str, protection: S3Protection
) -> StoreError:
    """The probe's error, with the likely reason where the server gave none (Ceph RGW
    refuses encryption over plain http, and storage classes it was not set up with)."""
    error = exc.response.setdefault("Error", {})
    code = error_code(exc)
    if not error.get("Message"):
        asked = []
        if protection.sse is not None:
            asked.append(f"encryption {protection.sse}")
        if protection.storage_class is not None:
            asked.append(f"storage class {protection.storage_class}")
        if asked and code in ("InvalidRequest", "InvalidArgument", "InvalidStorageClass"):
            error["Message"] = (
                f"the server refused a test write with {' and '.join(asked)} (some servers, "
                "such as Ceph RGW, accept encryption only over https, and only the storage "
                "classes they were set up with)"
            )
    return s3_error("PutObject", bucket, key, exc)


def _delete_versions(client: S3Client, bucket: str, key: str, versions: list[str]) -> None:
    """Remove what the probe wrote, where the bucket allows it (retention may not)."""
    deletes: list[dict[str, str]] = [{"VersionId": version} for version in versions] or [{}]
    for delete in deletes:
        with contextlib.suppress(*BOTO_ERRORS):
            client.delete_object(Bucket=bucket, Key=key, **delete)  # type: ignore[arg-type]
