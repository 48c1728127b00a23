"""S3 Object Lock, legal hold, encryption and storage class, as the S3 server reports them.

Each test runs on every S3 server under test (tests/support/s3server.py); every assertion
reads back what the server says about the stored object, not what the store meant to send.
Where a server cannot do what is asked (Ceph RGW 16 and encryption or storage classes), the
store must refuse at start-up, with one line saying why. Retention is read with HeadObject
(``ObjectLockMode``, ``ObjectLockRetainUntilDate``): moto 5.2 answers GetObjectRetention with
a 500. The legal hold is read with GetObjectLegalHold.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from archiver.errors import StoreError
from archiver.store.s3 import S3Protection, S3Store
from tests.support.s3server import S3Server

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MIB = 1024 * 1024
PREFIX = "evidence"


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


def governance_on(server: S3Server) -> S3Protection:
    """GOVERNANCE, less what the server cannot do (checked by tests of their own below)."""
    return replace(
        GOVERNANCE,
        sse=GOVERNANCE.sse if server.applies_encryption else None,
        storage_class=GOVERNANCE.storage_class if server.has_storage_classes else None,
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
    s3_server: S3Server,
) -> None:
    protection = governance_on(s3_server)
    store = make_store(lock_bucket, protection)
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
        assert head.get("ServerSideEncryption") == protection.sse, key
        assert head.get("StorageClass", "STANDARD") == (protection.storage_class or "STANDARD")
        assert await store.unkept_promises(key) == []

    info = await store.object_info("s/video.mp4")
    assert info["object_lock_mode"] == "GOVERNANCE"
    assert info["legal_hold"] == "ON"
    assert info.get("server_side_encryption") == protection.sse
    assert info["storage_class"] == (protection.storage_class or "STANDARD")
    assert info["object_lock_retain_until"].endswith("Z")
    assert info["version_id"]


async def test_compliance_mode_and_kms_encryption(
    make_store: MakeStore,
    lock_bucket: str,
    s3_client: S3Client,
    s3_server: S3Server,
) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/0d5c1e2a-evidence"
    protection = S3Protection(
        object_lock_mode="COMPLIANCE", object_lock_days=3650, sse="aws:kms", sse_kms_key_id=key_id
    )
    store = make_store(lock_bucket, protection)
    if not s3_server.applies_encryption:
        with pytest.raises(StoreError, match="aws:kms") as refused:
            await store.check()
        assert "\n" not in str(refused.value)
        return
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
    s3_server: S3Server,
) -> None:
    store = make_store(lock_bucket, governance_on(s3_server))
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

    await make_store(s3_bucket, S3Protection(storage_class=None)).check()  # no lock asked: fine


@pytest.mark.parametrize(
    "protection",
    [S3Protection(sse="AES256"), S3Protection(storage_class="STANDARD_IA")],
    ids=["encryption", "storage-class"],
)
async def test_start_up_refuses_what_the_server_does_not_do(
    make_store: MakeStore, s3_bucket: str, s3_server: S3Server, protection: S3Protection
) -> None:
    """Asked for encryption or a storage class the server does not give, the store refuses
    to start, in one line naming the bucket; where the server does give it, it starts."""
    store = make_store(s3_bucket, protection)
    able = s3_server.applies_encryption if protection.sse else s3_server.has_storage_classes
    if able:
        await store.check()
        return
    with pytest.raises(StoreError) as refused:
        await store.check()
    message = str(refused.value)
    assert s3_bucket in message and "\n" not in message
    assert (protection.sse or protection.storage_class or "?") in message


async def test_start_up_check_names_a_missing_bucket(
    make_store: MakeStore,
) -> None:
    with pytest.raises(StoreError, match="S3 bucket 'no-such-bucket' does not exist"):
        await make_store("no-such-bucket", S3Protection()).check()
