"""The evidence page: one self-contained HTML file an auditor reads in any browser.

Per session: the vendor's record as nested tables, every file with its kind, size and
SHA-256 and a link to it, screenshots shown in place, videos playable in place, what the
vendor did not offer, and the ledger proof. No script at all, no style sheet or font from
elsewhere (the CSS is inline), and every link is relative, so the page works offline from a
bag, a zip unpacked anywhere, or a folder of the store. Every value that came from a vendor
goes through :func:`html.escape`.

It is written into each exported bag (:mod:`archiver.export`), and with
``[store] evidence_page = true`` beside each session's manifest as it is archived
(:mod:`archiver.archiving`); there the manifest comes after the page, so the page says where
the manifest and its ledger entry are instead of quoting them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import PurePosixPath
from typing import Any

from archiver.ledger import LedgerRecord, entry_key
from archiver.manifest import Manifest, StoredArtifact
from archiver.model import rfc3339
from archiver.progress import human_bytes

PAGE_NAME = "index.html"
PAGE_CONTENT_TYPE = "text/html; charset=utf-8"
PAGE_KIND = "evidence_page"
# Deeper than this, the vendor's record is shown as JSON text rather than nested tables.
MAX_RECORD_DEPTH = 6

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})
_VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".m4v", ".mov", ".ogv"})

Link = Callable[[str], str]
"""The relative URL of a store key, from where the page is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PageSession:
    manifest: Manifest
    manifest_key: str
    manifest_sha256: str | None = None  # None: the manifest is written after the page
    ledger_record: LedgerRecord | None = None
    current: bool = True  # False: an earlier archive, replaced by a re-archive


@dataclass(frozen=True, slots=True, kw_only=True)
class PageContext:
    title: str
    generated_at: datetime
    organization: str | None = None
    ledger_head: str | None = None  # SEQ:SHA256 when the page was made


def render_page(sessions: Sequence[PageSession], context: PageContext, link: Link) -> bytes:
    body = "".join(_session(session, link) for session in sessions)
    contents = "".join(
        f'<li><a href="#{_anchor(session)}">{escape(_heading(session))}</a></li>'
        for session in sessions
    )
    facts = [("made", rfc3339(context.generated_at))]
    if context.organization:
        facts.insert(0, ("from", context.organization))
    if context.ledger_head:
        facts.append(("ledger head", context.ledger_head))
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(context.title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(context.title)}</h1>{_facts(facts)}"
        + (f"<nav><ol>{contents}</ol></nav>" if len(sessions) > 1 else "")
        + body
        + "</body></html>\n"
    )
    return page.encode()


def is_image(artifact: StoredArtifact) -> bool:
    return _media(artifact, "image/", _IMAGE_SUFFIXES)


def is_video(artifact: StoredArtifact) -> bool:
    return _media(artifact, "video/", _VIDEO_SUFFIXES)


def _media(artifact: StoredArtifact, prefix: str, suffixes: frozenset[str]) -> bool:
    if artifact.content_type:
        return artifact.content_type.lower().startswith(prefix)
    return PurePosixPath(artifact.key).suffix.lower() in suffixes


def _session(session: PageSession, link: Link) -> str:
    manifest = session.manifest
    total = sum(artifact.size for artifact in manifest.artifacts)
    facts = [
        ("source", manifest.source),
        ("session", manifest.session_id),
        ("archived at", rfc3339(manifest.archived_at)),
        ("archiver", manifest.archiver_version),
        ("files", f"{len(manifest.artifacts)}, {human_bytes(total)} ({total} bytes)"),
    ]
    if manifest.previous_manifest:
        facts.append(("replaces", manifest.previous_manifest))
    media = _media_section(manifest.artifacts, link)
    return (
        f'<section id="{_anchor(session)}">'
        f"<h2>{escape(_heading(session))}</h2>"
        f"{_facts(facts)}"
        f"<h3>Ledger proof</h3>{_ledger(session, link)}"
        f"<h3>Files</h3>{_files(manifest.artifacts, link)}"
        f"{media}"
        f"<h3>Not offered by the vendor</h3>{_not_archived(manifest.not_archived)}"
        f"<h3>The vendor's record</h3>{_record(manifest.session, 0)}"
        "</section>"
    )


def _ledger(session: PageSession, link: Link) -> str:
    manifest_link = _a(link(session.manifest_key), session.manifest_key)
    if session.manifest_sha256 is None:
        return (
            f"<p>The manifest {manifest_link} lists every file below with its size and SHA-256; "
            "it is written after this page, and its SHA-256 is then recorded in the store's "
            "hash-chained ledger (<code>ledger/</code>). <code>archiver show</code> prints "
            "the entry, <code>archiver verify</code> checks the chain.</p>"
        )
    record = session.ledger_record
    rows = [("manifest", manifest_link), ("manifest SHA-256", _code(session.manifest_sha256))]
    if record is None:
        rows.append(("ledger entry", "<strong>not recorded</strong>"))
    else:
        rows += [
            (
                "ledger entry",
                f"{_a(link(entry_key(record.seq)), str(record.seq))}, "
                f"recorded {escape(record.recorded_at)}",
            ),
            ("entry says", _code(record.manifest_sha256)),
        ]
    return _table(("", ""), rows, head=False)


def _files(artifacts: Sequence[StoredArtifact], link: Link) -> str:
    rows = [
        (
            escape(artifact.kind),
            f'<span title="{artifact.size} bytes">{escape(human_bytes(artifact.size))}</span>',
            _code(artifact.sha256),
            _a(link(artifact.key), artifact.key),
        )
        for artifact in artifacts
    ]
    if not rows:
        return "<p>none</p>"
    return _table(("kind", "size", "SHA-256", "file"), rows, css="files")


def _media_section(artifacts: Sequence[StoredArtifact], link: Link) -> str:
    videos = [
        f'<figure><video controls preload="metadata" src="{escape(link(a.key))}"></video>'
        f"<figcaption>{escape(a.key)}</figcaption></figure>"
        for a in artifacts
        if is_video(a)
    ]
    images = [
        f'<figure><a href="{escape(link(a.key))}"><img loading="lazy" '
        f'src="{escape(link(a.key))}" alt="{escape(a.kind)} {escape(a.key)}"></a>'
        f"<figcaption>{escape(PurePosixPath(a.key).name)}</figcaption></figure>"
        for a in artifacts
        if is_image(a)
    ]
    parts = []
    if videos:
        parts.append(f"<h3>Video</h3>{''.join(videos)}")
    if images:
        parts.append(f'<h3>Screenshots</h3><div class="shots">{"".join(images)}</div>')
    return "".join(parts)


def _not_archived(notes: Sequence[str]) -> str:
    if not notes:
        return "<p>nothing: everything the vendor offers was archived</p>"
    return "<ul>" + "".join(f"<li>{escape(note)}</li>" for note in notes) + "</ul>"


def _record(value: Any, depth: int) -> str:
    if isinstance(value, dict):
        if not value:
            return "<em>{}</em>"
        if depth >= MAX_RECORD_DEPTH:
            return _code(_json(value))
        rows = [(_code(str(name)), _record(item, depth + 1)) for name, item in value.items()]
        return _table(("", ""), rows, head=False, css="record")
    if isinstance(value, list):
        if not value:
            return "<em>[]</em>"
        if depth >= MAX_RECORD_DEPTH:
            return _code(_json(value))
        items = "".join(f"<li>{_record(item, depth + 1)}</li>" for item in value)
        return f'<ol start="0">{items}</ol>'
    if value is None:
        return "<em>null</em>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _facts(facts: Sequence[tuple[str, str]]) -> str:
    return (
        "<dl>"
        + "".join(f"<dt>{escape(name)}</dt><dd>{escape(value)}</dd>" for name, value in facts)
        + "</dl>"
    )


def _table(
    headings: Sequence[str], rows: Sequence[Sequence[str]], *, head: bool = True, css: str = ""
) -> str:
    """Rows of cells that are HTML already (escaped by the caller)."""
    thead = (
        "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headings) + "</tr></thead>"
        if head
        else ""
    )
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    attribute = f' class="{css}"' if css else ""
    return f"<table{attribute}>{thead}<tbody>{body}</tbody></table>"


def _a(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _heading(session: PageSession) -> str:
    manifest = session.manifest
    heading = f"{manifest.source} session {manifest.session_id}"
    if session.current:
        return heading
    return f"{heading}: earlier archive of {rfc3339(manifest.archived_at)}, replaced"


def _anchor(session: PageSession) -> str:
    return escape(session.manifest_key)


_CSS = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:75em;padding:0 1em;"
    "color:#1b1b1b}"
    "h1{font-size:1.6em}h2{margin-top:2.5em;border-bottom:2px solid #444}"
    "h3{margin-top:1.5em}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}"
    "dd{margin:0;overflow-wrap:anywhere}"
    "table{border-collapse:collapse;width:100%;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}"
    "th{background:#eee}code{font-size:.85em;overflow-wrap:anywhere}"
    "table.files td:nth-child(2){white-space:nowrap}"
    "table.record{width:auto}table.record td:first-child{white-space:nowrap}"
    "video{max-width:100%;max-height:70vh;background:#000}"
    ".shots{display:flex;flex-wrap:wrap;gap:1em}.shots figure{margin:0;width:16em}"
    ".shots img{max-width:100%;border:1px solid #ccc}figcaption{font-size:.8em;"
    "overflow-wrap:anywhere}"
)
