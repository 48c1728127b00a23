"""``archiver status``: how each source stands, read from the state and the store's ledger.

Needs no vendor token and takes no lock (the state is opened read-only), so it runs beside
the daemon. Something needs attention when an enabled source has no successful pass within
``readiness_max_missed_passes`` intervals, its last pass failed, sessions are failing, or
the oldest complete session not archived yet has fewer than ``retention_warn_days`` left
before the vendor's retention (``retention_days``) deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from archiver.config import DEFAULT_MAX_MISSED_PASSES, Config, SourceSettings
from archiver.errors import ArchiverError
from archiver.ledger import Ledger, entry_key, sha256_hex
from archiver.model import SourceSummary, rfc3339
from archiver.state import State
from archiver.store import Store

DAY = timedelta(days=1)
RECENT = DAY


@dataclass(frozen=True, slots=True)
class LedgerHead:
    seq: int
    sha256: str

    @property
    def anchor(self) -> str:
        """The form ``verify --anchor`` takes."""
        return f"{self.seq}:{self.sha256}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    summary: SourceSummary
    enabled: bool
    retention_days: float | None
    retention_warn_days: float | None
    attention: tuple[str, ...]
    days_left: float | None

    @property
    def name(self) -> str:
        return self.summary.source

    def to_json(self) -> dict[str, Any]:
        summary = self.summary
        last_pass = summary.last_pass
        oldest = summary.oldest_unarchived
        return {
            "source": self.name,
            "enabled": self.enabled,
            "watermark": _moment(summary.watermark),
            "last_pass": None
            if last_pass is None
            else {
                "started_at": rfc3339(last_pass.started_at),
                "finished_at": rfc3339(last_pass.finished_at),
                "ok": last_pass.ok,
                "error": last_pass.error,
            },
            "last_success_at": _moment(summary.last_success_at),
            "archived": {"total": summary.archived, "last_24h": summary.archived_recently},
            "held_back": summary.held_back,
            "failing": {
                "count": summary.failing,
                "newest_error": summary.newest_error,
                "newest_error_at": _moment(summary.newest_error_at),
            },
            "oldest_unarchived": None
            if oldest is None
            else {
                "session_id": oldest.session_id,
                "started_at": _moment(oldest.started_at or oldest.first_seen),
                "days_left": None if self.days_left is None else round(self.days_left, 2),
            },
            "retention_days": self.retention_days,
            "retention_warn_days": self.retention_warn_days,
            "attention": list(self.attention),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    at: datetime
    state: str
    store: str
    ledger_head: LedgerHead | None
    sources: tuple[SourceStatus, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def attention(self) -> list[str]:
        found = list(self.problems)
        for source in self.sources:
            found.extend(f"{source.name}: {reason}" for reason in source.attention)
        return found

    @property
    def healthy(self) -> bool:
        return not self.attention

    def to_json(self) -> dict[str, Any]:
        return {
            "at": rfc3339(self.at),
            "healthy": self.healthy,
            "state": self.state,
            "store": self.store,
            "ledger_head": None
            if self.ledger_head is None
            else {"seq": self.ledger_head.seq, "sha256": self.ledger_head.sha256},
            "sources": [source.to_json() for source in self.sources],
            "attention": self.attention,
        }


async def gather(config: Config, state: State, store: Store, *, now: datetime) -> StatusReport:
    names = sorted(set(config.sources) | set(await state.source_names()))
    max_missed = (
        config.metrics.readiness_max_missed_passes
        if config.metrics is not None
        else DEFAULT_MAX_MISSED_PASSES
    )
    window = timedelta(seconds=config.engine.interval_seconds * max_missed)
    sources = []
    for name in names:
        summary = await state.summary(name, archived_since=now - RECENT)
        sources.append(
            judge(summary, config.sources.get(name), now=now, window=window, max_missed=max_missed)
        )
    problems: list[str] = []
    head = None
    try:
        head = await ledger_head(store, now=now)
    except ArchiverError as exc:
        problems.append(f"store: the ledger cannot be read: {exc}")
    return StatusReport(
        at=now,
        state=state.description,
        store=store.description,
        ledger_head=head,
        sources=tuple(sources),
        problems=tuple(problems),
    )


def judge(
    summary: SourceSummary,
    settings: SourceSettings | None,
    *,
    now: datetime,
    window: timedelta,
    max_missed: int,
) -> SourceStatus:
    """A source's summary, with what needs attention (nothing, for a disabled source)."""
    days_left = None
    oldest = summary.oldest_unarchived
    if oldest is not None and settings is not None:
        waiting_since = oldest.started_at or oldest.first_seen
        days_left = settings.retention_days - (now - waiting_since) / DAY
    attention: list[str] = []
    if settings is not None:
        attention = _attention(summary, settings, days_left, now, window, max_missed)
    return SourceStatus(
        summary=summary,
        enabled=settings is not None,
        retention_days=settings.retention_days if settings else None,
        retention_warn_days=settings.retention_warn_days if settings else None,
        attention=tuple(attention),
        days_left=days_left,
    )


def _attention(
    summary: SourceSummary,
    settings: SourceSettings,
    days_left: float | None,
    now: datetime,
    window: timedelta,
    max_missed: int,
) -> list[str]:
    found = []
    if summary.last_pass is None:
        found.append("no pass recorded yet")
    elif not summary.last_pass.ok:
        found.append(f"the last pass failed: {summary.last_pass.error}")
    if summary.last_pass is not None and (
        summary.last_success_at is None or now - summary.last_success_at > window
    ):
        found.append(f"no successful pass in the last {max_missed} intervals ({_span(window)})")
    if summary.failing:
        found.append(f"{summary.failing} session(s) failing")
    if days_left is not None and days_left < settings.retention_warn_days:
        assert summary.oldest_unarchived is not None
        found.append(
            f"session {summary.oldest_unarchived.session_id} is not archived and the vendor's "
            f"retention deletes it in {max(days_left, 0):.1f} days"
        )
    return found


async def ledger_head(store: Store, *, now: datetime) -> LedgerHead | None:
    seq = await Ledger(store, clock=lambda: now).next_seq() - 1
    if seq < 0:
        return None
    return LedgerHead(seq, sha256_hex(await store.read_created(entry_key(seq))))


def render(report: StatusReport) -> str:
    lines = [
        f"archiver status at {_when(report.at)}",
        f"  state  {report.state}",
        f"  store  {report.store}",
        "  ledger head  "
        + (
            f"{report.ledger_head.anchor}  ({report.ledger_head.seq + 1} entries)"
            if report.ledger_head
            else "none (nothing archived yet)"
        ),
    ]
    for source in report.sources:
        lines.extend(["", *_source_lines(source, report.at)])
    lines.append("")
    if report.healthy:
        lines.append("healthy: nothing needs attention")
    else:
        lines.append("needs attention:")
        lines.extend(f"  - {reason}" for reason in report.attention)
    return "\n".join(lines)


def _source_lines(source: SourceStatus, now: datetime) -> list[str]:
    summary = source.summary
    lines = [f"{source.name}  {'enabled' if source.enabled else 'disabled (not in the config)'}"]
    rows: list[tuple[str, str]] = [("watermark", _when(summary.watermark))]
    last_pass = summary.last_pass
    if last_pass is None:
        rows.append(("last pass", "none yet"))
    else:
        took = (last_pass.finished_at - last_pass.started_at).total_seconds()
        result = "ok" if last_pass.ok else f"FAILED: {last_pass.error}"
        rows.append(
            (
                "last pass",
                f"{_when(last_pass.finished_at)} ({_ago(last_pass.finished_at, now)}, "
                f"took {took:.1f} s) {result}",
            )
        )
        if not last_pass.ok:
            rows.append(("last success", _when(summary.last_success_at)))
    rows.append(
        ("archived", f"{summary.archived:,} in all, {summary.archived_recently:,} in the last 24 h")
    )
    rows.append(("held back", f"{summary.held_back:,} (not complete at the vendor yet)"))
    failing = f"{summary.failing:,}"
    if summary.failing:
        failing += f"; newest {_when(summary.newest_error_at)}: {summary.newest_error}"
    rows.append(("failing", failing))
    rows.append(("oldest waiting", _oldest(source, now)))
    width = max(len(label) for label, _ in rows)
    lines.extend(f"  {label:<{width}}  {value}" for label, value in rows)
    return lines


def _oldest(source: SourceStatus, now: datetime) -> str:
    oldest = source.summary.oldest_unarchived
    if oldest is None:
        return "none: every complete session is archived"
    since = oldest.started_at or oldest.first_seen
    text = f"{oldest.session_id}, started {_when(since)} ({_ago(since, now)})"
    if source.days_left is not None:
        warn = (
            " WARNING"
            if source.retention_warn_days and source.days_left < source.retention_warn_days
            else ""
        )
        text += (
            f"; {max(source.days_left, 0):.1f} of {source.retention_days:g} retention days "
            f"left{warn}"
        )
    return text


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _moment(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def _ago(moment: datetime, now: datetime) -> str:
    return f"{_span(now - moment)} ago"


def _span(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
