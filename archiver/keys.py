"""Store keys from vendor-supplied names.

Session ids, artifact names and file names come from vendors and may hold anything: ``../``,
``/``, ``\\``, absolute paths, NUL bytes, control characters, ``:``, odd Unicode, hundreds of
characters, empty strings. :func:`safe_segment` turns one such name into one key segment that

* only uses ``[A-Za-z0-9._-]``, never starts with ``.`` and is at most :data:`MAX_SEGMENT` long,
  so a key built from segments never leaves the store root;
* is stable: the same name always gives the same segment;
* does not collide: whenever the name had to change, a short SHA-256 of the *original* name is
  appended (``a:b`` → ``a_b--<hash>``, ``a@b.zip`` → ``a_b--<hash>.zip``), and a name that
  merely looks like such a result is hashed too, so ``a:b`` and ``a_b`` (or a crafted
  ``a_b--<hash>``) never meet.

:func:`check_key` is the stores' last line of defence: it refuses keys that could escape a root.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_SEGMENT = 100
HASH_LENGTH = 12

_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}\Z")
# "--" marks the hash: a UUID's last group is also 12 hex digits, but never after "--".
_HASHED_SUFFIX = re.compile(rf"--[0-9a-f]{{{HASH_LENGTH}}}(\.[A-Za-z0-9]{{1,8}})?\Z")


def safe_segment(name: str) -> str:
    """One key segment for ``name``: readable when possible, unique and harmless always."""
    if _is_kept_verbatim(name):
        return name
    readable = _UNSAFE_CHAR.sub("_", unicodedata.normalize("NFC", name))
    if readable.startswith("."):
        readable = "_" + readable[1:]
    # The hash goes before a file extension, so ``a@b.zip`` stays a ``.zip``.
    extension_match = _EXTENSION.search(readable)
    extension = extension_match.group() if extension_match and extension_match.start() else ""
    stem = readable[: len(readable) - len(extension)]
    suffix = "--" + _short_hash(name) + extension
    return (stem[: MAX_SEGMENT - len(suffix)] or "_") + suffix


def safe_key(*parts: str) -> str:
    """A ``/``-joined key with one segment per part; a ``/`` inside a part is not a separator."""
    if not parts:
        raise ValueError("a key needs at least one part")
    return "/".join(safe_segment(part) for part in parts)


def check_key(key: str) -> None:
    """Raise ValueError unless ``key`` is a relative key that stays under any root.

    Refused: empty and absolute keys, backslashes, NUL bytes, empty, ``.`` or ``..`` segments.
    """
    if not key:
        raise ValueError("empty store key")
    if key.startswith("/"):
        raise ValueError(f"store key {key!r} is absolute")
    if "\\" in key or "\0" in key:
        raise ValueError(f"store key {key!r} contains a backslash or a NUL byte")
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise ValueError(f"store key {key!r} has an empty, '.' or '..' segment")


def check_prefix(prefix: str) -> None:
    """Like :func:`check_key` for a listing prefix: empty is fine, a trailing ``/`` too."""
    if prefix:
        check_key(prefix.removesuffix("/"))


def _is_kept_verbatim(name: str) -> bool:
    # A name that already looks like a hashed result is hashed again, or it could collide
    # with the name whose hash it carries.
    return (
        len(name) <= MAX_SEGMENT
        and _SAFE_SEGMENT.fullmatch(name) is not None
        and _HASHED_SUFFIX.search(name) is None
    )


def _short_hash(name: str) -> str:
    # surrogatepass: a str from a JSON document may hold lone surrogates.
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]
