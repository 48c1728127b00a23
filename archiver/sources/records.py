"""Small builders every source uses to turn vendor JSON into artifacts."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlsplit

from archiver.model import Artifact


def json_artifact(name: str, kind: str, document: Any) -> Artifact:
    """A vendor record kept as a JSON file (pretty-printed, UTF-8, as the vendor spelled it)."""
    content = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    return Artifact(name=name, kind=kind, content=content, content_type="application/json")


def url_basename(url: str, default: str = "file") -> str:
    """The last path segment of ``url``, unquoted (the engine sanitizes it into a key)."""
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or default
