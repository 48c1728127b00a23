"""What an S3 write was asked to give an object, and whether the server's answer shows it.

A server that is asked for encryption, retention or a checksum and answers 200 has not
necessarily done it: Ceph RGW 16 stores an object unencrypted over https while it answers
200 to ``ServerSideEncryption: AES256``, ignores Object Lock headers on multipart uploads,
and does not check ``x-amz-checksum-*`` values; s3rver checks not even ``Content-MD5``. So
every promise is read back from what the server returns:

* **bytes**: the ETag of a single ``PutObject`` or ``UploadPart`` is the MD5 of the bytes the
  server stored (on AWS and every S3-compatible server, except under SSE-KMS or SSE-C,
  where the ETag is opaque); a multipart object's ETag is the MD5 of its parts' MD5s
  followed by ``-<parts>``. The MD5 of what was sent is computed in the same pass as the
  SHA-256 (or the part's CRC32) and sent as ``Content-MD5`` too, so servers that check it
  refuse a changed body outright and the others are caught by the ETag;
* **encryption**: ``ServerSideEncryption`` (and ``SSEKMSKeyId``) in the write's answer;
* **retention and legal hold**: a ``HeadObject`` of the version written, since no write
  answer reports them.

Anything less raises a StoreError that names the object and what is missing.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from archiver.errors import StoreError, TransientStoreError

_PLAIN_ETAG = re.compile(r"[0-9a-f]{32}")
_MULTIPART_ETAG = re.compile(r"([0-9a-f]{32})-(\d+)")
# A retain-until date the server rounds (to the second, say) still keeps its promise.
RETENTION_SLACK = timedelta(seconds=2)


def new_md5() -> Any:
    """An MD5 hasher: an integrity check against the server's ETag, not a security measure."""
    return hashlib.md5(usedforsecurity=False)


def md5_base64(digest: bytes) -> str:
    """A ``Content-MD5`` header value."""
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Protection:
    """What every object written gets: retention, legal hold, encryption, storage class."""

    object_lock_mode: str | None = None  # GOVERNANCE | COMPLIANCE (checked by the config)
    object_lock_days: int = 0
    legal_hold: bool = False
    sse: str | None = None  # AES256 | aws:kms
    sse_kms_key_id: str | None = None
    storage_class: str | None = None

    @property
    def needs_object_lock(self) -> bool:
        return self.object_lock_mode is not None or self.legal_hold

    def retain_until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.object_lock_days)

    def request_args(self, now: datetime) -> dict[str, Any]:
        """PutObject / CreateMultipartUpload arguments; the retention counts from ``now``."""
        args: dict[str, Any] = {}
        if self.object_lock_mode is not None:
            args["ObjectLockMode"] = self.object_lock_mode
            args["ObjectLockRetainUntilDate"] = self.retain_until(now)
        if self.legal_hold:
            args["ObjectLockLegalHoldStatus"] = "ON"
        args.update(self.encryption_args())
        if self.storage_class is not None:
            args["StorageClass"] = self.storage_class
        return args

    def encryption_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.sse is not None:
            args["ServerSideEncryption"] = self.sse
            if self.sse == "aws:kms" and self.sse_kms_key_id:
                args["SSEKMSKeyId"] = self.sse_kms_key_id
        return args

    def unmet_encryption(self, answer: Mapping[str, Any]) -> str | None:
        """What is missing from the encryption ``answer`` (a write's or a HEAD's) reports."""
        if self.sse is None:
            return None
        applied = answer.get("ServerSideEncryption")
        if applied != self.sse:
            return f"encryption {self.sse} was asked for; the server reports {applied or 'none'}"
        wanted_key = self.sse_kms_key_id
        is_alias = wanted_key is not None and (
            wanted_key.startswith("alias/") or ":alias/" in wanted_key
        )
        if self.sse == "aws:kms" and wanted_key and not is_alias:
            key = str(answer.get("SSEKMSKeyId") or "")
            if key != wanted_key and not key.endswith(f"/{wanted_key}"):
                return f"KMS key {wanted_key} was asked for; the server reports {key or 'none'}"
        return None

    def unmet_lock(
        self, head: Mapping[str, Any], *, retain_until: datetime | None = None
    ) -> list[str]:
        """What is missing from the retention and legal hold a HEAD of the object reports;
        with ``retain_until``, the retention must last at least that long."""
        unmet = []
        if self.object_lock_mode is not None:
            mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
            if mode != self.object_lock_mode or until is None:
                unmet.append(
                    f"retention {self.object_lock_mode} was asked for; the server reports "
                    f"{mode or 'none'}"
                )
            elif retain_until is not None and until < retain_until - RETENTION_SLACK:
                unmet.append(
                    f"retention until {retain_until.isoformat()} was asked for; the server "
                    f"reports {until.isoformat()}"
                )
        if self.legal_hold and head.get("ObjectLockLegalHoldStatus") != "ON":
            unmet.append(
                "a legal hold was asked for; the server reports "
                f"{head.get('ObjectLockLegalHoldStatus') or 'none'}"
            )
        return unmet

    def unmet_on_head(self, head: Mapping[str, Any]) -> list[str]:
        """What a stored object lacks of this protection, as a HEAD of it reports."""
        encryption = self.unmet_encryption(head)
        return [*([encryption] if encryption else []), *self.unmet_lock(head)]


def etag_of(answer: Mapping[str, Any]) -> str:
    return str(answer.get("ETag", "")).strip('"').lower()


def etag_is_md5(answer: Mapping[str, Any]) -> bool:
    """Whether the ETag in a write's answer (or a HEAD) is made of MD5s: not under SSE-KMS
    (configured, or the bucket's default) or SSE-C, where S3 makes it opaque."""
    applied = str(answer.get("ServerSideEncryption") or "")
    return not applied.startswith("aws:kms") and not answer.get("SSECustomerAlgorithm")


def check_stored_bytes(answer: Mapping[str, Any], md5_hex: str, *, what: str) -> None:
    """The ETag of a single PutObject or UploadPart must be the MD5 of what was sent."""
    etag = etag_of(answer)
    if not etag_is_md5(answer) or not _PLAIN_ETAG.fullmatch(etag):
        return  # an opaque ETag (SSE-KMS, SSE-C): the Content-MD5 header is the check
    if etag != md5_hex:
        raise TransientStoreError(
            f"{what}: the server stored bytes with MD5 {etag}, not the MD5 {md5_hex} of the "
            "bytes sent (changed on the way)"
        )


def check_multipart_bytes(
    answer: Mapping[str, Any], part_md5s: Iterable[str], *, what: str
) -> None:
    """The ETag of a completed multipart upload must be made of the parts' MD5s."""
    etag = etag_of(answer)
    if not etag_is_md5(answer) or not _MULTIPART_ETAG.fullmatch(etag):
        return
    expected = multipart_etag(part_md5s)
    if etag != expected:
        raise TransientStoreError(
            f"{what}: the server assembled an object with ETag {etag}, not {expected} from "
            "the parts sent"
        )


def multipart_etag(part_md5s: Iterable[str]) -> str:
    """The ETag S3 gives an object made of parts with these MD5s (hex)."""
    digests = [bytes.fromhex(digest) for digest in part_md5s]
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def check_encryption(answer: Mapping[str, Any], *, protection: S3Protection, what: str) -> None:
    unmet = protection.unmet_encryption(answer)
    if unmet:
        raise StoreError(f"{what}: {unmet}; the object must not be counted as archived")
