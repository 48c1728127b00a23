"""The S3 store believes what the server answers, never the request it sent.

Bytes changed on the way, conditional writes ignored, encryption or retention not applied,
operations not implemented: each is made to happen, on every S3 server under test where it
can be (a proxy that flips a byte), or on moto with the proxy dropping the request header
that asks for it (moto checks no signature, so it then behaves like a server that ignores
the header). Each test fails on a store that trusts a 200.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from archiver.errors import StoreError
from archiver.ledger import entry_key
from archiver.store import s3 as s3_module
from archiver.store.s3 import S3Protection, S3Store
from archiver.store.s3promises import check_stored_bytes, etag_is_md5
from archiver.verify import LEDGER_ENTRY_VERSIONS, UNPROTECTED, Verifier
from tests.support.s3proxy import S3FaultProxy
from tests.support.s3server import S3Server, new_bucket, plain_client

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MIB = 1024 * 1024
PREFIX = "evidence"
LOCKED = S3Protection(object_lock_mode="GOVERNANCE", object_lock_days=1)

MakeStore = Callable[..., S3Store]


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[MakeStore]:
    stores: list[S3Store] = []

    def make(bucket: str, endpoint: str, **options: Any) -> S3Store:
        store = S3Store(
            bucket,
            PREFIX,
            endpoint_url=endpoint,
            multipart_threshold=5 * MIB,
            multipart_chunksize=5 * MIB,
            spool_dir=tmp_path,
            **options,
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def write(store: S3Store, key: str, data: bytes) -> None:
    async with store.open_writer(key) as writer:
        for start in range(0, len(data), MIB):
            await writer.write(data[start : start + MIB])
        await writer.commit(sha256=sha256(data), size=len(data))


# -- bytes changed on the way --------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "size"),
    [("PutObject", 1000), ("PutObject", 2 * MIB), ("UploadPart", 12 * MIB)],
    ids=["put-bytes", "small-object", "multipart"],
)
async def test_a_body_changed_on_the_way_is_never_committed(
    make_store: MakeStore, s3_http_endpoint: str, s3_bucket: str, operation: str, size: int
) -> None:
    """Servers that check Content-MD5 refuse the body; the others (moto, s3rver) store it,
    and the ETag they answer gives it away: the write fails and leaves nothing."""
    data = os.urandom(size)
    with S3FaultProxy(s3_http_endpoint, seed=0, rate=0.0, corrupt=frozenset({operation})) as proxy:
        store = make_store(s3_bucket, proxy.url)
        with pytest.raises(StoreError):
            if size == 1000:
                await store.put_bytes("s/manifest.json", data)
            else:
                await write(store, "s/video.mp4", data)
        assert proxy.corrupted[operation] >= 1
    clean = make_store(s3_bucket, s3_http_endpoint)
    assert [key async for key in clean.list_keys("s/")] == []
    await write(clean, "s/video.mp4", data)  # the same bytes, unchanged, go through
    assert await clean.read_bytes("s/video.mp4") == data


# -- creating a key once -------------------------------------------------------------------


async def test_a_writer_that_loses_a_create_race_leaves_the_winner_s_bytes(
    make_store: MakeStore,
    s3_endpoint: str,
    s3_server: S3Server,
    lock_bucket: str,
    s3_client: S3Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another writer's entry lands between this writer's look and its write: on a server
    that honours If-None-Match the write is refused; on one that does not (Ceph RGW, on a
    versioned bucket) the older version wins; the loser's version is locked like every
    write, so it stays, and the winner's bytes go on top of it."""
    store = make_store(lock_bucket, s3_endpoint, protection=LOCKED)
    await store.check()
    assert store.traits.conditional_create == s3_server.conditional_writes_on_versioned_buckets
    key = entry_key(0)
    await make_store(lock_bucket, s3_endpoint, protection=LOCKED).put_bytes(key, b"winner")

    looked = []
    oldest_version = s3_module.oldest_version  # type: ignore[attr-defined]

    def look_too_early(*args: Any) -> str | None:  # the look missed the winner's write
        looked.append(args)
        return None if len(looked) == 1 else oldest_version(*args)

    monkeypatch.setattr(s3_module, "oldest_version", look_too_early)
    assert await store.put_bytes_if_absent(key, b"loser") is False
    monkeypatch.undo()

    assert await store.read_created(key) == b"winner"
    assert await store.read_bytes(key) == b"winner"  # the newest version too
    assert await store.unkept_promises(key) == []
    if store.traits.conditional_create:
        assert await store.extra_versions("ledger/") == {}
    else:
        assert len(looked) == 2  # it wrote, looked again, and found it had lost
        assert await store.extra_versions("ledger/") == {key: 3}  # winner, loser, winner


async def test_racing_writers_of_one_key_have_one_winner(
    make_store: MakeStore, s3_endpoint: str, lock_bucket: str
) -> None:
    stores = [make_store(lock_bucket, s3_endpoint, protection=LOCKED) for _ in range(6)]
    for store in stores:
        await store.check()
    key = entry_key(7)
    won = await asyncio.gather(
        *(store.put_bytes_if_absent(key, f"writer {n}".encode()) for n, store in enumerate(stores))
    )
    assert won.count(True) == 1
    winner = won.index(True)
    for store in stores:
        assert await store.read_created(key) == f"writer {winner}".encode()
        assert await store.read_bytes(key) == f"writer {winner}".encode()
    assert await stores[0].unkept_promises(key) == []


async def test_verify_reports_a_ledger_entry_with_more_than_one_version(
    make_store: MakeStore, s3_endpoint: str, lock_bucket: str, s3_client: S3Client
) -> None:
    store = make_store(lock_bucket, s3_endpoint, protection=LOCKED)
    await store.check()
    assert await store.put_bytes_if_absent(entry_key(0), b"the entry")
    s3_client.put_object(  # written over by someone: a new version, the old one kept
        Bucket=lock_bucket,
        Key=f"{PREFIX}/{entry_key(0)}",
        Body=b"another",
        ContentMD5="sy1z5W7Jm8Xsj4OHHN5wig==",  # MD5 of b"another"
    )
    assert await store.extra_versions("ledger/") == {entry_key(0): 2}
    assert await store.read_created(entry_key(0)) == b"the entry"
    report = await Verifier(store, concurrency=2).run()
    assert (LEDGER_ENTRY_VERSIONS, entry_key(0)) in {(p.kind, p.key) for p in report.problems}


# -- promises the server does not keep (moto, with the proxy dropping the header) -----------


@pytest.fixture
def moto_lock_bucket(moto_endpoint: str) -> str:
    name = f"lock-{uuid.uuid4().hex}"
    client = plain_client(moto_endpoint)
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    client.close()
    return name


@pytest.fixture
def moto_bucket(moto_endpoint: str) -> str:
    return new_bucket(moto_endpoint)


@pytest.mark.parametrize(
    ("protection", "header", "complaint"),
    [
        (S3Protection(sse="AES256"), "x-amz-server-side-encryption", "encryption AES256"),
        (LOCKED, "x-amz-object-lock-mode", "retention GOVERNANCE"),
        (S3Protection(legal_hold=True), "x-amz-object-lock-legal-hold", "a legal hold"),
    ],
    ids=["encryption", "retention", "legal-hold"],
)
async def test_a_write_the_server_did_not_protect_fails(
    make_store: MakeStore,
    moto_endpoint: str,
    moto_lock_bucket: str,
    protection: S3Protection,
    header: str,
    complaint: str,
) -> None:
    with S3FaultProxy(moto_endpoint, seed=0, rate=0.0, strip=frozenset({header})) as proxy:
        store = make_store(moto_lock_bucket, proxy.url, protection=protection, read_only=True)
        await store.check()
        for attempt in (store.put_bytes("s/manifest.json", b"{}"), write(store, "s/v.mp4", b"v")):
            with pytest.raises(StoreError, match=complaint):
                await attempt
    honest = make_store(moto_lock_bucket, moto_endpoint, protection=protection)
    await honest.put_bytes("s/manifest.json", b"{}")
    assert await honest.unkept_promises("s/manifest.json") == []


async def test_start_up_refuses_encryption_the_server_leaves_out(
    make_store: MakeStore, moto_endpoint: str, moto_lock_bucket: str
) -> None:
    header = frozenset({"x-amz-server-side-encryption"})
    with S3FaultProxy(moto_endpoint, seed=0, rate=0.0, strip=header) as proxy:
        store = make_store(moto_lock_bucket, proxy.url, protection=S3Protection(sse="AES256"))
        with pytest.raises(StoreError, match="encryption AES256 was asked for") as refused:
            await store.check()
    assert "\n" not in str(refused.value)


async def test_verify_reports_objects_without_the_protection_configured(
    make_store: MakeStore, moto_endpoint: str, moto_lock_bucket: str
) -> None:
    plain = make_store(moto_lock_bucket, moto_endpoint)
    await plain.put_bytes("s/manifest.json", b"{}")
    locked = make_store(moto_lock_bucket, moto_endpoint, protection=LOCKED, read_only=True)
    unkept = await locked.unkept_promises("s/manifest.json")
    assert unkept == ["retention GOVERNANCE was asked for; the server reports none"]


# -- servers that ignore If-None-Match without versioning, or do not list uploads ----------


async def test_without_conditional_writes_or_versions_the_store_needs_single_writer(
    make_store: MakeStore, moto_endpoint: str, moto_bucket: str
) -> None:
    bucket = moto_bucket
    strip = frozenset({"if-none-match"})
    with S3FaultProxy(moto_endpoint, seed=0, rate=0.0, strip=strip) as proxy:
        with pytest.raises(StoreError, match="single_writer = true") as refused:
            await make_store(bucket, proxy.url).check()
        assert "ignores conditional writes" in str(refused.value)
        store = make_store(bucket, proxy.url, single_writer=True)
        await store.check()
        assert not store.traits.conditional_create and not store.traits.versioned
        assert await store.put_bytes_if_absent(entry_key(0), b"first")
        assert not await store.put_bytes_if_absent(entry_key(0), b"second")
        assert await store.read_created(entry_key(0)) == b"first"


async def test_a_server_that_cannot_list_uploads_makes_clean_up_a_warning(
    make_store: MakeStore, moto_endpoint: str, moto_bucket: str
) -> None:
    not_implemented = frozenset({"ListMultipartUploads"})
    with S3FaultProxy(moto_endpoint, seed=0, rate=0.0, not_implemented=not_implemented) as proxy:
        store = make_store(moto_bucket, proxy.url)
        assert await store.cleanup_incomplete(older_than=0) == 0
        assert proxy.requests["ListMultipartUploads"] == 1  # asked once: 501 is not retried


async def test_errors_name_the_operation_that_failed_and_the_server_s_message(
    make_store: MakeStore, moto_endpoint: str, moto_bucket: str
) -> None:
    not_implemented = frozenset({"UploadPart"})
    with S3FaultProxy(moto_endpoint, seed=0, rate=0.0, not_implemented=not_implemented) as proxy:
        store = make_store(moto_bucket, proxy.url)
        with pytest.raises(StoreError) as failed:
            await write(store, "s/video.mp4", os.urandom(6 * MIB))
    message = str(failed.value)
    assert message.startswith("S3 UploadPart of s3://")
    assert "NotImplemented (HTTP 501): not here" in message and "transient" not in message


async def test_unprotected_objects_are_a_verify_problem(
    make_store: MakeStore, moto_endpoint: str, moto_lock_bucket: str
) -> None:
    from archiver.engine import utc_now
    from archiver.ledger import Ledger
    from archiver.manifest import Manifest, StoredArtifact

    plain = make_store(moto_lock_bucket, moto_endpoint)
    await plain.put_bytes("src/s1/video.mp4", b"video")
    video = StoredArtifact(
        key="src/s1/video.mp4",
        size=5,
        sha256=sha256(b"video"),
        kind="video",
        content_type=None,
        source_url=None,
    )
    manifest = Manifest(
        source="src",
        session_id="s1",
        archived_at=utc_now(),
        archiver_version="test",
        session={},
        artifacts=(video,),
    ).to_bytes()
    await plain.put_bytes("src/s1/manifest.json", manifest)
    await Ledger(plain, clock=utc_now).append(
        source="src",
        session_id="s1",
        manifest_key="src/s1/manifest.json",
        manifest_sha256=sha256(manifest),
        previous_manifest_key=None,
    )
    locked = make_store(moto_lock_bucket, moto_endpoint, protection=LOCKED, read_only=True)
    report = await Verifier(locked, concurrency=2).run()
    assert (UNPROTECTED, "src/s1/video.mp4") in {(p.kind, p.key) for p in report.problems}


async def test_the_start_up_check_reads_the_bucket_s_default_retention(
    make_store: MakeStore, s3_endpoint: str, lock_bucket: str, s3_client: S3Client
) -> None:
    store = make_store(lock_bucket, s3_endpoint, protection=LOCKED)
    await store.check()
    assert store.traits.default_retention is None and not store.traits.covers(LOCKED)
    s3_client.put_object_lock_configuration(
        Bucket=lock_bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}},
        },
    )
    store = make_store(lock_bucket, s3_endpoint, protection=LOCKED)
    await store.check()
    assert store.traits.default_retention == ("GOVERNANCE", 2)
    assert store.traits.covers(LOCKED)
    longer = S3Protection(object_lock_mode="GOVERNANCE", object_lock_days=3)
    assert not store.traits.covers(longer)
    assert not store.traits.covers(S3Protection(object_lock_mode="COMPLIANCE", object_lock_days=1))


async def test_the_client_sends_only_the_checksums_the_store_computes(
    make_store: MakeStore, moto_endpoint: str, moto_bucket: str
) -> None:
    """botocore's default adds a CRC32 trailer (aws-chunked) to bodies it can: Ceph RGW over
    https answers 411 to it. The ceph-tls runs of these suites are the end-to-end check."""
    store = make_store(moto_bucket, moto_endpoint)
    config = store._client.meta.config
    assert getattr(config, "request_checksum_calculation", None) == "when_required"
    assert getattr(config, "response_checksum_validation", None) == "when_required"


# -- version order on moto: the proxy drops If-None-Match, as Ceph RGW ignores it ------------


async def test_version_order_on_a_server_that_ignores_conditional_writes(
    make_store: MakeStore, moto_endpoint: str, moto_lock_bucket: str
) -> None:
    strip = frozenset({"if-none-match"})
    with S3FaultProxy(moto_endpoint, seed=0, rate=0.0, strip=strip) as proxy:
        stores = [make_store(moto_lock_bucket, proxy.url, protection=LOCKED) for _ in range(4)]
        for store in stores:
            await store.check()
            assert not store.traits.conditional_create and store.traits.versioned
        key = entry_key(3)
        won = await asyncio.gather(
            *(store.put_bytes_if_absent(key, f"w{n}".encode()) for n, store in enumerate(stores))
        )
        assert won.count(True) == 1
        winner = f"w{won.index(True)}".encode()
        for store in stores:
            assert await store.read_created(key) == winner
            assert await store.read_bytes(key) == winner
        assert await stores[0].unkept_promises(key) == []  # every version was written locked
        assert not await stores[0].put_bytes_if_absent(key, b"late")


async def test_version_order_refuses_to_write_over_a_deleted_key(
    make_store: MakeStore, moto_endpoint: str, moto_lock_bucket: str
) -> None:
    key = entry_key(0)
    strip = frozenset({"if-none-match"})
    with S3FaultProxy(moto_endpoint, seed=0, rate=0.0, strip=strip) as proxy:
        store = make_store(moto_lock_bucket, proxy.url, protection=LOCKED)
        await store.check()
        assert await store.put_bytes_if_absent(key, b"the entry")
        client = plain_client(moto_endpoint)
        client.delete_object(Bucket=moto_lock_bucket, Key=f"{PREFIX}/{key}")  # a marker
        client.close()
        with pytest.raises(StoreError, match="has been deleted"):
            await store.put_bytes_if_absent(key, b"written over the deletion")


def test_an_etag_under_kms_or_customer_keys_is_not_taken_for_an_md5() -> None:
    """On AWS a bucket's default SSE-KMS makes every ETag opaque, configured or not: the
    answer says so, and the Content-MD5 header is then the check."""
    md5 = "5d41402abc4b2a76b9719d911017c592"
    assert etag_is_md5({"ETag": f'"{md5}"'})
    assert etag_is_md5({"ETag": f'"{md5}"', "ServerSideEncryption": "AES256"})
    assert not etag_is_md5({"ETag": '"0f1e"', "ServerSideEncryption": "aws:kms"})
    assert not etag_is_md5({"ETag": '"0f1e"', "ServerSideEncryption": "aws:kms:dsse"})
    assert not etag_is_md5({"ETag": '"0f1e"', "SSECustomerAlgorithm": "AES256"})
    check_stored_bytes({"ETag": '"0f1e"', "ServerSideEncryption": "aws:kms"}, md5, what="x")
    with pytest.raises(StoreError, match="not the MD5"):
        check_stored_bytes({"ETag": '"00000000000000000000000000000000"'}, md5, what="x")
