"""A multipart upload that sends a spool file's parts while the file is still being written.

The writer appends to its spool file; :class:`PartChecksums`, fed the same bytes in the same
worker job, keeps the CRC32 of each part. Each time a whole part is written, a worker of
the store's part pool uploads it, straight from the file, with that CRC32, so S3 refuses a
part whose bytes are not the ones the engine hashed (changed in the spool or on the way).
On commit the rest of the file goes as the last part and the upload is completed. Until
then S3 shows nothing at the key.

Downloading and uploading so overlap: an artifact takes about as long as the slower of the
two, not their sum. No part is held in memory; botocore reads each body from the file as it
sends it, in blocks. A part S3 has is punched out of the spool (:mod:`archiver.store.holes`),
so the spool holds what is downloaded and not yet in S3, whatever the object's size.
S3 allows 10,000 parts, so the part size doubles every ``PARTS_PER_SIZE`` parts (the
first 8.4 GB go in 8 MiB parts, the default).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import threading
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.exceptions

from archiver.store.holes import punch_hole
from archiver.store.s3errors import BOTO_ERRORS, error_code, s3_error
from archiver.store.s3promises import (
    S3Protection,
    check_encryption,
    check_multipart_bytes,
    check_stored_bytes,
    etag_is_md5,
    etag_of,
    md5_base64,
    multipart_etag,
    new_md5,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PARTS_PER_SIZE = 1000

_T = TypeVar("_T")


def part_size(number: int, base: int) -> int:
    """The size of part ``number`` (from 1): ``base``, doubled every ``PARTS_PER_SIZE`` parts."""
    return base << ((number - 1) // PARTS_PER_SIZE)


class SpoolRange:
    """A read-only, seekable view of ``[start, end)`` of an open file: one part's body.

    It has a length but no ``fileno``, so botocore sends exactly this range.
    """

    def __init__(self, fd: int, start: int, end: int) -> None:
        self._fd = fd
        self._start = start
        self._end = end
        self._position = start

    def __len__(self) -> int:
        return self._end - self._start

    def read(self, size: int | None = -1) -> bytes:
        left = self._end - self._position
        wanted = left if size is None or size < 0 else min(size, left)
        if wanted <= 0:
            return b""
        data = os.pread(self._fd, wanted, self._position)
        while len(data) < wanted:  # a read may return less (at most about 2 GiB at once)
            more = os.pread(self._fd, wanted - len(data), self._position + len(data))
            if not more:
                ended = self._position + len(data)
                raise OSError(f"the spool file ended at byte {ended}, before {self._end}")
            data += more
        self._position += wanted
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: self._start, os.SEEK_CUR: self._position, os.SEEK_END: self._end}
        self._position = min(max(base[whence] + offset, self._start), self._end)
        return self._position - self._start

    def tell(self) -> int:
        return self._position - self._start

    def seekable(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class PartDigest:
    """One part's size, CRC32 (base64, as S3 wants it) and MD5 (bytes)."""

    size: int
    crc32: str
    md5: bytes


class PartChecksums:
    """The CRC32 and MD5 of each part of an object, from its bytes in the order written."""

    def __init__(self, part_bytes: int) -> None:
        self.part_bytes = part_bytes
        self.finished: list[PartDigest] = []  # part n is finished[n - 1]
        self._crc32 = 0
        self._md5 = new_md5()
        self._filled = 0

    def add(self, pieces: tuple[bytes, ...]) -> None:
        for piece in pieces:
            view = memoryview(piece)
            while view:
                size = part_size(len(self.finished) + 1, self.part_bytes)
                taken = view[: size - self._filled]
                self._crc32 = zlib.crc32(taken, self._crc32)
                self._md5.update(taken)
                self._filled += len(taken)
                view = view[len(taken) :]
                if self._filled == size:
                    self.finished.append(PartDigest(size, _base64(self._crc32), self._md5.digest()))
                    self._crc32, self._md5, self._filled = 0, new_md5(), 0

    def part(self, number: int, *, last: bool) -> PartDigest | None:
        """Part ``number`` if it is finished or, with ``last``, the part being filled; None
        if it is not (yet) there."""
        if number <= len(self.finished):
            return self.finished[number - 1]
        if last and number == len(self.finished) + 1 and self._filled:
            return PartDigest(self._filled, _base64(self._crc32), self._md5.digest())
        return None


class StreamingUpload:
    """One object's multipart upload, fed from a spool file that is still growing.

    ``offer()`` after every write (it raises the upload's failure as soon as there is one),
    ``complete`` once the spool is whole, ``abort`` in every other case. ``abort`` waits for
    every worker job of this upload before it asks S3 to drop the parts, so no part can
    arrive after that; the spool file is closed only once no job uses it, even when a
    cancellation cuts the abort short.
    """

    def __init__(
        self,
        *,
        client: S3Client,
        pool: Executor,
        part_pool: Executor,
        bucket: str,
        key: str,
        spool: Path,
        checksums: PartChecksums,
        create_args: Mapping[str, Any],
        parts_in_flight: int,
        protection: S3Protection,
    ) -> None:
        self._client = client
        self._protection = protection
        self._pool = pool
        self._part_pool = part_pool
        self._bucket = bucket
        self._key = key
        self._checksums = checksums
        self._create_args = create_args
        # Writable only so that parts S3 has can be punched out (see archiver.store.holes).
        self._fd = os.open(spool, os.O_RDWR | os.O_CLOEXEC)
        self._upload_id: str | None = None
        self._end: int | None = None
        self._wake = asyncio.Event()
        self._in_flight = asyncio.Semaphore(parts_in_flight)
        self._jobs: set[Future[Any]] = set()
        self._uploads: list[asyncio.Future[_SentPart]] = []
        self._failure: BaseException | None = None
        self._completed = False
        self._lock = threading.Lock()  # _jobs and closing, also touched by worker threads
        self._closing = False
        self._closed = False
        self._sender = asyncio.ensure_future(self._send_parts())
        self._sender.add_done_callback(self._note_failure)

    def offer(self) -> None:
        """More of the spool is written; raises the upload's failure, if it failed."""
        if self._failure is not None:
            raise self._failure
        self._wake.set()

    async def complete(self, *, size: int) -> str | None:
        """Send the rest of the ``size`` bytes and complete the upload; returns the id of
        the version it made (None on a bucket without versioning)."""
        self._end = size
        self._wake.set()
        parts = await self._sender
        version_id = await self._call("CompleteMultipartUpload", self._pool, self._complete, parts)
        self._close_when_idle()
        return version_id

    async def abort(self) -> None:
        """Stop, wait for this upload's jobs, and drop the parts S3 has (unless completed)."""
        try:
            tasks: list[asyncio.Future[Any]] = [self._sender, *self._uploads]
            for task in tasks:
                task.cancel()  # a queued job is dropped with its task; a running one is not
            await asyncio.gather(*tasks, return_exceptions=True)
            for job in list(self._jobs):
                with contextlib.suppress(BaseException):
                    await asyncio.wrap_future(job)
            if not self._completed and self._upload_id is not None:
                # Best effort (also when the store is already closed: RuntimeError);
                # ``cleanup_incomplete`` removes what is left behind.
                with contextlib.suppress(*BOTO_ERRORS, RuntimeError):
                    await self._in_worker(
                        self._pool,
                        self._client.abort_multipart_upload,
                        Bucket=self._bucket,
                        Key=self._key,
                        UploadId=self._upload_id,
                    )
        finally:
            self._close_when_idle()

    # -- the sender: hands each part to the part pool once it is written -------------------

    async def _send_parts(self) -> list[_SentPart]:
        await self._call("CreateMultipartUpload", self._pool, self._create)
        start, number = 0, 1
        while True:
            while (part := self._checksums.part(number, last=self._end is not None)) is None:
                if self._end is not None:
                    break
                self._wake.clear()
                await self._wake.wait()
            if self._failure is not None:
                raise self._failure
            if part is None:
                break
            # Queued parts wait here, not in the part pool, where they would hold back
            # every other object's parts until all of this one's were sent.
            await self._in_flight.acquire()
            upload = self._send_part(number, start, part)
            self._uploads.append(asyncio.ensure_future(upload))
            self._uploads[-1].add_done_callback(self._note_failure)
            start, number = start + part.size, number + 1
        return list(await asyncio.gather(*self._uploads))

    async def _send_part(self, number: int, start: int, part: PartDigest) -> _SentPart:
        try:
            return await self._call(
                "UploadPart", self._part_pool, self._upload_part, number, start, part
            )
        finally:
            self._in_flight.release()

    async def _call(
        self,
        operation: str,
        executor: Executor,
        function: Callable[..., _T],
        *args: Any,
        **kwargs: Any,
    ) -> _T:
        try:
            return await self._in_worker(executor, function, *args, **kwargs)
        except BOTO_ERRORS as exc:
            raise s3_error(operation, self._bucket, self._key, exc) from exc

    async def _in_worker(
        self, executor: Executor, function: Callable[..., _T], *args: Any, **kwargs: Any
    ) -> _T:
        """Run ``function`` in ``executor``, kept in ``_jobs`` until it has ended."""
        job = executor.submit(function, *args, **kwargs)
        with self._lock:
            self._jobs.add(job)
        job.add_done_callback(self._job_done)
        return await asyncio.wrap_future(job)

    def _job_done(self, job: Future[Any]) -> None:  # in the job's thread, or here
        with self._lock:
            self._jobs.discard(job)
            close = self._closing and not self._jobs
        if close:
            self._close()

    def _note_failure(self, future: asyncio.Future[Any]) -> None:
        if self._failure is None and not future.cancelled() and future.exception() is not None:
            self._failure = future.exception()

    def _require_upload_id(self) -> str:
        assert self._upload_id is not None, "CreateMultipartUpload has not answered"
        return self._upload_id

    def _close_when_idle(self) -> None:
        """Close the spool file now, or as soon as the last job using it has ended (an
        abort cut short by a cancellation leaves jobs running)."""
        with self._lock:
            self._closing = True
            close = not self._jobs
        if close:
            self._close()

    def _close(self) -> None:
        with self._lock:
            closed, self._closed = self._closed, True
        if not closed:
            os.close(self._fd)

    # -- in worker threads --------------------------------------------------------------------

    def _create(self) -> None:
        # Set here, in the thread: an abort that waited for this job then knows the upload.
        self._upload_id = self._client.create_multipart_upload(**self._create_args)["UploadId"]

    def _complete(self, parts: list[_SentPart]) -> str | None:
        md5s = [part.md5.hex() for part in parts]
        try:
            answer: Mapping[str, Any] = self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._require_upload_id(),
                MultipartUpload={"Parts": [part.completed for part in parts]},
            )
        except botocore.exceptions.ClientError as exc:
            # botocore sent it again after an answer was lost, and the server had completed
            # it the first time: the object is there, made of exactly these parts.
            if error_code(exc) != "NoSuchUpload":
                raise
            answer = self._completed_before(exc, md5s)
        # Also here: an abort after a cancelled commit must not try to undo a completion.
        self._completed = True
        what = f"S3 CompleteMultipartUpload of s3://{self._bucket}/{self._key}"
        check_multipart_bytes(answer, md5s, what=what)
        check_encryption(answer, protection=self._protection, what=what)
        return answer.get("VersionId")

    def _completed_before(
        self, exc: botocore.exceptions.ClientError, md5s: list[str]
    ) -> Mapping[str, Any]:
        """The HEAD of the object a lost CompleteMultipartUpload made, if its ETag says it
        is made of these parts; otherwise the NoSuchUpload error stands."""
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=self._key)
        except botocore.exceptions.ClientError:
            raise exc from None
        etag = etag_of(head)
        made_of_these = (
            etag == multipart_etag(md5s)
            if etag_is_md5(head)
            else etag.endswith(f"-{len(md5s)}")  # opaque (SSE-KMS): the part count at least
        )
        if not made_of_these:
            raise exc
        return head

    def _upload_part(self, number: int, start: int, part: PartDigest) -> _SentPart:
        end = start + part.size
        answer = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._require_upload_id(),
            PartNumber=number,
            Body=SpoolRange(self._fd, start, end),  # type: ignore[arg-type]
            ChecksumAlgorithm="CRC32",
            ChecksumCRC32=part.crc32,
            ContentMD5=md5_base64(part.md5),
        )
        what = f"S3 UploadPart {number} of s3://{self._bucket}/{self._key}"
        check_stored_bytes(answer, part.md5.hex(), what=what)
        check_encryption(answer, protection=self._protection, what=what)
        punch_hole(self._fd, start, end)
        completed: CompletedPartTypeDef = {
            "PartNumber": number,
            "ETag": answer["ETag"],
            "ChecksumCRC32": part.crc32,
        }
        return _SentPart(completed=completed, md5=part.md5)


@dataclass(frozen=True, slots=True)
class _SentPart:
    completed: CompletedPartTypeDef
    md5: bytes


def _base64(crc32: int) -> str:
    return base64.b64encode(crc32.to_bytes(4, "big")).decode("ascii")
