"""Version order on a versioned bucket: how the S3 store creates a key once where the server
ignores ``If-None-Match`` (Ceph RGW on versioned and Object Lock buckets).

Every writer puts its version; the oldest version of the key is the object, because the
server orders a key's versions by when it stored them, and every writer sees that order the
same way. A writer whose version is not the oldest lost the race: it deletes its version
where the bucket allows it (retention may not), and readers of such keys read the oldest
version, never the newest. ``archiver verify`` reports a ledger key with more than one
version. Functions here run in worker threads.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import TYPE_CHECKING

from archiver.store.s3errors import BOTO_ERRORS

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def oldest_version(client: S3Client, bucket: str, key: str) -> str | None:
    """The id of the oldest version of ``key`` (delete markers aside), or None."""
    oldest = None
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for version in page.get("Versions", []):
            if version["Key"] == key:
                oldest = version["VersionId"]  # listed newest first
    return oldest


def version_counts(client: S3Client, bucket: str, prefix: str) -> Counter[str]:
    """How many versions (delete markers aside) each key under ``prefix`` has."""
    counts: Counter[str] = Counter()
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        counts.update(version["Key"] for version in page.get("Versions", []))
    return counts


def withdraw(client: S3Client, bucket: str, key: str, version_id: str) -> bool:
    """Delete the version a writer that lost the race wrote; False where retention keeps it."""
    with contextlib.suppress(*BOTO_ERRORS):
        client.delete_object(Bucket=bucket, Key=key, VersionId=version_id)
        return True
    return False
