"""One error tree for the whole daemon.

Errors are translated at the boundary where they happen (HTTP client, store, state,
config loader) and keep their cause (``raise ... from exc``). Each class says once
whether retrying can help::

    ArchiverError
    ├── ConfigError            bad configuration; names the key and the file (exit code 78)
    ├── TransientError         retrying later may help; carries ``retry_after`` seconds
    │   ├── VendorUnavailable  429, 5xx, timeouts, connection resets from a vendor origin
    │   ├── IncompleteDownload body shorter/longer than its Content-Length
    │   └── UnreadableVendorResponse  not JSON where JSON was asked for (also a BadVendorResponse)
    ├── VendorError            a vendor answered with an error retrying will not fix (4xx)
    ├── BadVendorResponse      the vendor answered, but not with what its API documents
    ├── NotReady               the session is not complete yet (e.g. PDF still rendering)
    ├── UnsafeArtifactUrl      an artifact URL we refuse to fetch (scheme, address, size)
    ├── ExportError            an export could not be completed (nothing left as a bag)
    ├── StoreError             the store could not keep an object
    │   └── TransientStoreError  ...for a reason that may pass (S3 5xx, SlowDown, unreachable)
    └── StateError             the state database could not be used
        └── StateLocked        another daemon holds the same state database
"""

from __future__ import annotations


class ArchiverError(Exception):
    """Root of every error raised on purpose by archiver."""


class ExportError(ArchiverError):
    """An export could not be completed; nothing was left at its destination."""


class ConfigError(ArchiverError):
    """The configuration is unusable. The message names the key and the file."""

    def __init__(self, message: str, *, key: str | None = None, path: str | None = None) -> None:
        self.key = key
        self.path = path
        where = []
        if key:
            where.append(f"key '{key}'")
        if path:
            where.append(f"in {path}")
        prefix = " ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class TransientError(ArchiverError):
    """A failure that may go away by itself; ``retry_after`` is a hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VendorUnavailable(TransientError):
    """A vendor answered 429 or 5xx, timed out, or dropped the connection."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.vendor = vendor
        self.status = status


class IncompleteDownload(TransientError):
    """A body ended before (or ran past) the length its Content-Length announced."""


class VendorError(ArchiverError):
    """A vendor refused a request in a way retrying will not fix (401, 403, 404, 400...)."""

    def __init__(self, message: str, *, vendor: str, status: int | None = None) -> None:
        super().__init__(message)
        self.vendor = vendor
        self.status = status


class BadVendorResponse(ArchiverError):
    """A vendor response that does not follow its documented format (HTML, bad JSON...)."""


class UnreadableVendorResponse(BadVendorResponse, TransientError):
    """A body that should be JSON and is not: an HTML page from a proxy, a document cut off.

    Seen in the wild as passing trouble between archiver and the vendor, so it is retried.
    """

    def __init__(self, message: str) -> None:
        TransientError.__init__(self, message)


class NotReady(ArchiverError):
    """The session (or one of its artifacts) is not complete yet; try again on a later pass."""


class UnsafeArtifactUrl(ArchiverError):
    """An artifact URL or body we refuse: wrong scheme, forbidden address, or too large."""


class StoreError(ArchiverError):
    """The store could not write, read or list an object."""


class StoreBroken(StoreError):
    """The store can make nothing durable any more (a write-back to its disk failed).

    Only a restart helps: the engine stops the pass instead of failing session after
    session, and the daemon exits so its supervisor restarts it.
    """


class TransientStoreError(StoreError, TransientError):
    """The store failed in a way a later attempt may not (5xx, throttling, unreachable)."""

    def __init__(self, message: str) -> None:
        TransientError.__init__(self, message)


class StateError(ArchiverError):
    """The state database could not be opened or used."""


class StateLocked(StateError):
    """Another archiver process already uses this state database."""
