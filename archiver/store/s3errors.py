"""What an S3 call that failed becomes: a StoreError naming the operation, bucket and key.

botocore's ``standard`` retry mode has already retried throttling, 5xx and connection
errors a few times by then; the message says when a later attempt may still succeed.
Credentials never appear in it.
"""

from __future__ import annotations

import botocore.exceptions

from archiver.errors import StoreError, TransientStoreError

BOTO_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
TRANSIENT_NOTE = "; transient, a later attempt may succeed"
_NO_CREDENTIALS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
)
_UNREACHABLE = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
_TRANSIENT_CODES = frozenset(
    {
        "BadDigest",  # bytes changed on the way: sending them again may well work
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
    }
)
# A 5xx that no later attempt changes: the server does not implement the request.
_PERMANENT_CODES = frozenset({"NotImplemented"})


def s3_error(operation: str, bucket: str, key: str, cause: Exception) -> StoreError:
    """A StoreError naming the operation, bucket, key, S3 error code and the server's own
    message where it gave one; no credentials."""
    if isinstance(cause, botocore.exceptions.ClientError):
        operation = cause.operation_name or operation  # the request that failed, exactly
    where = f"S3 {operation} of s3://{bucket}/{key} failed"
    if isinstance(cause, botocore.exceptions.ClientError):
        error = cause.response.get("Error", {})
        code = error.get("Code", "unknown error")
        status = http_status(cause)
        transient = code in _TRANSIENT_CODES or (
            status is not None and status >= 500 and code not in _PERMANENT_CODES
        )
        message = f"{where}: {code} (HTTP {status})"
        reason = error.get("Message")
        if reason and reason != code:
            message += f": {reason}"
        return TransientStoreError(message + TRANSIENT_NOTE) if transient else StoreError(message)
    if isinstance(cause, _NO_CREDENTIALS):
        return StoreError(f"{where}: no usable AWS credentials in boto3's default chain")
    if isinstance(cause, _UNREACHABLE):
        unreachable = f"{where}: cannot reach the endpoint ({type(cause).__name__})"
        return TransientStoreError(unreachable + TRANSIENT_NOTE)
    return StoreError(f"{where}: {type(cause).__name__}")


def error_code(exc: BaseException | None) -> str | None:
    """The S3 error code of a botocore ClientError (``NoSuchKey``...); None for anything else."""
    if not isinstance(exc, botocore.exceptions.ClientError):
        return None
    code = exc.response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def http_status(exc: BaseException | None) -> int | None:
    """The HTTP status of a botocore ClientError; None for anything else."""
    if not isinstance(exc, botocore.exceptions.ClientError):
        return None
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
