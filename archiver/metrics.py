"""Prometheus adapter: observer events become metrics in a registry of their own.

The only module that imports prometheus-client. Labels are the source or vendor name, a
failure reason, a status class or a store operation: never a session id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from archiver.observe import FailureReason, NullObserver

__all__ = ["CONTENT_TYPE", "PrometheusObserver"]

PASS_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
STORE_OPERATIONS = ("put", "put_if_absent", "write", "commit")


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


class PrometheusObserver(NullObserver):
    def __init__(
        self,
        sources: Iterable[str] = (),
        *,
        vendors: Iterable[str] = (),
        retention_days: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.sessions_archived = Counter(
            "archiver_sessions_archived",
            "Sessions archived (manifest, ledger entry and state row written).",
            ["source"],
            registry=registry,
        )
        self.session_failures = Counter(
            "archiver_session_failures",
            "Sessions that failed, by the class of the reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.sessions_held_back = Gauge(
            "archiver_sessions_held_back",
            "Sessions the source's last pass held back as not complete yet.",
            ["source"],
            registry=registry,
        )
        self.artifacts_archived = Counter(
            "archiver_artifacts_archived",
            "Artifacts of archived sessions.",
            ["source"],
            registry=registry,
        )
        self.bytes_archived = Counter(
            "archiver_bytes_archived",
            "Bytes of the artifacts of archived sessions.",
            ["source"],
            registry=registry,
        )
        self.vendor_requests = Counter(
            "archiver_vendor_requests",
            "HTTP requests made for a vendor, by status class (error: no answer).",
            ["vendor", "status_class"],
            registry=registry,
        )
        self.vendor_retries = Counter(
            "archiver_vendor_retries",
            "Vendor requests and downloads tried again after a transient failure.",
            ["vendor"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "archiver_rate_limited",
            "Vendor answers with HTTP 429.",
            ["vendor"],
            registry=registry,
        )
        self.passes = Counter(
            "archiver_passes",
            "Passes over a source, by result (ok, error).",
            ["source", "result"],
            registry=registry,
        )
        self.pass_duration = Histogram(
            "archiver_pass_duration_seconds",
            "How long a pass over a source took.",
            ["source"],
            buckets=PASS_BUCKETS,
            registry=registry,
        )
        self.last_pass_success = Gauge(
            "archiver_last_pass_success_timestamp_seconds",
            "When the last successful pass over a source ended (Unix time).",
            ["source"],
            registry=registry,
        )
        self.watermark = Gauge(
            "archiver_watermark_timestamp_seconds",
            "The source's watermark: sessions started before it are listed no more (Unix time).",
            ["source"],
            registry=registry,
        )
        self.oldest_unarchived_age = Gauge(
            "archiver_oldest_unarchived_session_age_seconds",
            "Age of the oldest complete session not archived yet (0: none); the vendor's "
            "retention deletes it first.",
            ["source"],
            registry=registry,
        )
        self.retention = Gauge(
            "archiver_retention_seconds",
            "How long the vendor keeps a session (the source's retention_days).",
            ["source"],
            registry=registry,
        )
        self.ledger_head = Gauge(
            "archiver_ledger_head_sequence",
            "Sequence number of the last ledger entry this process appended.",
            registry=registry,
        )
        self.store_write_seconds = Histogram(
            "archiver_store_write_seconds",
            "Latency of store writes, by operation (put, put_if_absent, write, commit).",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.bytes_in_flight = Gauge(
            "archiver_store_bytes_in_flight",
            "Bytes handed to the store and not committed yet.",
            registry=registry,
        )
        self._held_back: dict[str, int] = {}
        self._ledger_head = -1
        self._clock = clock
        self._oldest_unarchived: dict[str, float] = {}
        self._aged_sources: set[str] = set()
        self._request_counters: dict[tuple[str, str], Counter] = {}
        self._write_histograms: dict[str, Histogram] = {}
        for source in sources:
            self._start_series(source)
        for source, days in (retention_days or {}).items():
            self.retention.labels(source).set(days * 86400)
        for vendor in vendors:
            self.vendor_retries.labels(vendor)
            self.rate_limited.labels(vendor)
        for operation in STORE_OPERATIONS:
            self.store_write_seconds.labels(operation)

    def _start_series(self, source: str) -> None:
        """Zero series for an enabled source, so a rate over them exists before any event."""
        for metric in (self.sessions_archived, self.artifacts_archived, self.bytes_archived):
            metric.labels(source)
        for reason in FailureReason:
            self.session_failures.labels(source, reason.value)
        for result in ("ok", "error"):
            self.passes.labels(source, result)
        self.sessions_held_back.labels(source).set(0)
        self.pass_duration.labels(source)
        self._age_series(source)

    def _age_series(self, source: str) -> None:
        """The age is worked out when scraped, from the start time last reported."""
        if source not in self._aged_sources:
            self._aged_sources.add(source)
            self.oldest_unarchived_age.labels(source).set_function(
                lambda: self._unarchived_age(source)
            )

    def _unarchived_age(self, source: str) -> float:
        started = self._oldest_unarchived.get(source)
        return 0.0 if started is None else max(0.0, self._clock() - started)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def pass_started(self, source: str) -> None:
        self._held_back[source] = 0

    def pass_finished(self, source: str, *, ok: bool, seconds: float) -> None:
        self.passes.labels(source, "ok" if ok else "error").inc()
        self.pass_duration.labels(source).observe(seconds)
        self.sessions_held_back.labels(source).set(self._held_back.pop(source, 0))
        if ok:
            self.last_pass_success.labels(source).set(time.time())

    def watermark_moved(self, source: str, watermark: datetime) -> None:
        self.watermark.labels(source).set(watermark.timestamp())

    def session_archived(
        self,
        source: str,
        *,
        session_id: str,
        artifacts: int,
        size: int,
        seconds: float,
        ledger_seq: int,
        rearchive: bool,
    ) -> None:
        self.sessions_archived.labels(source).inc()
        self.artifacts_archived.labels(source).inc(artifacts)
        self.bytes_archived.labels(source).inc(size)

    def session_failed(
        self,
        source: str,
        reason: FailureReason,
        *,
        session_id: str,
        error: str,
        attempts: int,
        max_attempts: int,
    ) -> None:
        self.session_failures.labels(source, reason.value).inc()

    def session_held_back(self, source: str, *, session_id: str) -> None:
        self._held_back[source] = self._held_back.get(source, 0) + 1

    def oldest_unarchived(self, source: str, started_at: datetime | None) -> None:
        if started_at is None:
            self._oldest_unarchived.pop(source, None)
        else:
            self._oldest_unarchived[source] = started_at.timestamp()
        self._age_series(source)

    def ledger_appended(self, seq: int) -> None:
        # Entries are appended out of order when several sessions finish at once.
        if seq > self._ledger_head:
            self._ledger_head = seq
            self.ledger_head.set(seq)

    def vendor_request(self, vendor: str, *, status: int | None) -> None:
        # Once per request and per store write: the labelled children are looked up once.
        key = (vendor, status_class(status))
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.vendor_requests.labels(*key)
        counter.inc()
        if status == 429:
            self.rate_limited.labels(vendor).inc()

    def vendor_retry(self, vendor: str) -> None:
        self.vendor_retries.labels(vendor).inc()

    def store_write(self, operation: str, *, seconds: float) -> None:
        histogram = self._write_histograms.get(operation)
        if histogram is None:
            histogram = self._write_histograms[operation] = self.store_write_seconds.labels(
                operation
            )
        histogram.observe(seconds)

    def store_bytes_in_flight(self, delta: int) -> None:
        self.bytes_in_flight.inc(delta)
