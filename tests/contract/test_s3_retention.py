"""S3 Object Lock, legal hold, encryption and storage class, as the S3 API server reports them.

The server is moto's standalone server over HTTP (tests/support/s3server.py); every assertion
reads back what the server says about the stored object, not what the store meant to send.
Retention is read with HeadObject (``ObjectLockMode``, ``ObjectLockRetainUntilDate``): moto
5.2 answers GetObjectRetention with a 500. The legal hold is read with GetObjectLegalHold.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from archiver.errors import StoreError
from archiver.store.s3 import S3Protection, S3Store

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MIB = 1024 * 1024
PREFIX = "evidence"


@pytest.fixture
def lock_bucket(s3_client: S3Client) -> str:
    """A bucket created with Object Lock (which turns versioning on with it)."""
    name = f"lock-{uuid.uuid4().hex}"
    s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


MakeStore = Callable[[str, S3Protection], S3Store]


@pytest.fixture
async def make_store(s3_endpoint: str, tmp_path: Path) -> AsyncIterator[MakeStore]:
    stores: list[S3Store] = []

    def make(bucket: str, protection: S3Protection) -> S3Store:
        store = S3Store(
            bucket,
            PREFIX,
            endpoint_url=s3_endpoint,
            multipart_threshold=5 * MIB,
            multipart_chunksize=5 * MIB,
            spool_dir=tmp_path,
            protection=protection,
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


GOVERNANCE = S3Protection(
    object_lock_mode="GOVERNANCE",
    object_lock_days=30,
    legal_hold=True,
    sse="AES256",
    storage_class="STANDARD_IA",
)


async def write_all_ways(store: S3Store) -> list[str]:
    """One object through each write path: put_bytes, if-absent, small and multipart writer."""
    await store.put_bytes("s/manifest.json", b"{}", content_type="application/json")
    assert await store.put_bytes_if_absent("ledger/000000000000.json", b"{}")
    for key, size in (("s/small.log", 1000), ("s/video.mp4", 11 * MIB)):
        data = os.urandom(size)
        async with store.open_writer(key) as writer:
            for start in range(0, size, MIB):
                await writer.write(data[start : start + MIB])
            await writer.commit(sha256=hashlib.sha256(data).hexdigest(), size=size)
    return ["s/manifest.json", "ledger/000000000000.json", "s/small.log", "s/video.mp4"]


async def test_every_write_path_carries_retention_hold_encryption_and_class(
    make_store: MakeStore,
    lock_bucket: str,
    s3_client: S3Client,
) -> None:
    store = make_store(lock_bucket, GOVERNANCE)
    await store.check()
    before = datetime.now(UTC)
    keys = await write_all_ways(store)

    for key in keys:
        full = f"{PREFIX}/{key}"
        head = s3_client.head_object(Bucket=lock_bucket, Key=full)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        until = head["ObjectLockRetainUntilDate"]
        assert before + timedelta(days=30) - timedelta(minutes=1) <= until, key
        assert until <= datetime.now(UTC) + timedelta(days=30, minutes=1), key
        hold = s3_client.get_object_legal_hold(Bucket=lock_bucket, Key=full)["LegalHold"]
        assert hold["Status"] == "ON", key
        assert head["ServerSideEncryption"] == "AES256", key
        assert head["StorageClass"] == "STANDARD_IA", key

    info = await store.object_info("s/video.mp4")
    assert info["object_lock_mode"] == "GOVERNANCE"
    assert info["legal_hold"] == "ON"
    assert info["server_side_encryption"] == "AES256"
    assert info["storage_class"] == "STANDARD_IA"
    assert info["object_lock_retain_until"].endswith("Z")
    assert info["version_id"]


async def test_compliance_mode_and_kms_encryption(
    make_store: MakeStore,
    lock_bucket: str,
    s3_client: S3Client,
) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/0d5c1e2a-evidence"
    protection = S3Protection(
        object_lock_mode="COMPLIANCE", object_lock_days=3650, sse="aws:kms", sse_kms_key_id=key_id
    )
    store = make_store(lock_bucket, protection)
    await store.check()
    await store.put_bytes("s/manifest.json", b"{}")

    full = f"{PREFIX}/s/manifest.json"
    head = s3_client.head_object(Bucket=lock_bucket, Key=full)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=3649)
    head = s3_client.head_object(Bucket=lock_bucket, Key=full)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_id


async def test_a_locked_key_written_again_gets_a_new_version_and_keeps_the_old(
    make_store: MakeStore,
    lock_bucket: str,
    s3_client: S3Client,
) -> None:
    store = make_store(lock_bucket, GOVERNANCE)
    await store.put_bytes("s/manifest.json", b'{"v": 1}')
    await store.put_bytes("s/manifest.json", b'{"v": 2}')

    versions = s3_client.list_object_versions(
        Bucket=lock_bucket, Prefix=f"{PREFIX}/s/manifest.json"
    )["Versions"]
    assert len(versions) == 2
    bodies = {
        s3_client.get_object(
            Bucket=lock_bucket, Key=f"{PREFIX}/s/manifest.json", VersionId=version["VersionId"]
        )["Body"].read()
        for version in versions
    }
    assert bodies == {b'{"v": 1}', b'{"v": 2}'}
    assert await store.read_bytes("s/manifest.json") == b'{"v": 2}'


async def test_start_up_check_refuses_a_bucket_without_object_lock(
    make_store: MakeStore,
    s3_bucket: str,
    s3_client: S3Client,
) -> None:
    with pytest.raises(StoreError, match=rf"'{s3_bucket}' does not have versioning enabled"):
        await make_store(s3_bucket, GOVERNANCE).check()

    s3_client.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(StoreError, match=rf"'{s3_bucket}' does not have Object Lock enabled"):
        await make_store(s3_bucket, S3Protection(legal_hold=True)).check()

    await make_store(s3_bucket, S3Protection(sse="AES256")).check()  # no lock asked: fine


async def test_start_up_check_names_a_missing_bucket(
    make_store: MakeStore,
) -> None:
    with pytest.raises(StoreError, match="S3 bucket 'no-such-bucket' does not exist"):
        await make_store("no-such-bucket", S3Protection()).check()
