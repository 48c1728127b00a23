"""Small builders every source uses to turn vendor JSON into artifacts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from archiver.errors import BadVendorResponse
from archiver.model import Artifact


def json_artifact(name: str, kind: str, document: Any) -> Artifact:
    """A vendor record kept as a JSON file (pretty-printed, UTF-8, as the vendor spelled it)."""
    content = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    return Artifact(name=name, kind=kind, content=content, content_type="application/json")


def url_basename(url: str, default: str = "file") -> str:
    """The last path segment of ``url``, unquoted (the engine sanitizes it into a key)."""
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or default


def parse_timestamp(value: Any, *, vendor: str) -> datetime | None:
    """An ISO 8601 / RFC 3339 time from a vendor record; no zone means UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadVendorResponse(f"{vendor}: unreadable time {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_windows(
    since: datetime, until: datetime, width: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    """``[since, until]`` cut into consecutive windows of at most ``width``."""
    start = since
    while start < until:
        end = min(start + width, until)
        yield start, end
        start = end
