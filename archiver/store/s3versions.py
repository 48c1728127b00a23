"""Version order on a versioned bucket: how the S3 store creates a key once where the server
ignores ``If-None-Match`` (Ceph RGW on versioned and Object Lock buckets).

Every writer puts its version; the oldest version of the key is the object, because the
server orders a key's versions by when it stored them, and every writer sees that order the
same way. A writer whose version is not the oldest lost the race: it deletes its version
where the bucket allows it; where retention keeps it, it puts the winner's bytes back on
top, so that the newest version is the object too. Readers of such keys read the oldest
version. ``archiver verify`` reports a ledger key with more than one version. Functions
here run in worker threads.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import TYPE_CHECKING

from archiver.errors import StoreError
from archiver.store.s3errors import BOTO_ERRORS

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def oldest_version(client: S3Client, bucket: str, key: str) -> str | None:
    """The id of the oldest version of ``key``, or None if it has none.

    A key whose newest version is a delete marker was there and has been removed: that is
    never "absent" to a writer, who would otherwise put evidence back over a deletion
    nobody has looked at, so it is a StoreError.
    """
    oldest = None
    newest_is_marker = False
    seen_newest = False
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for marker in page.get("DeleteMarkers", []):
            if marker["Key"] == key and marker.get("IsLatest"):
                newest_is_marker = True
        for version in page.get("Versions", []):
            if version["Key"] == key:
                oldest = version["VersionId"]  # listed newest first
                seen_newest = seen_newest or bool(version.get("IsLatest"))
    if newest_is_marker and not seen_newest:
        raise StoreError(
            f"s3://{bucket}/{key} has been deleted (a delete marker is its newest version); "
            "nothing is written over a deletion: run `archiver verify`"
        )
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
