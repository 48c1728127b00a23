"""The observer seam: fan-out, failure classes, the Prometheus adapter, readiness, the
observed store, and the ``[metrics]`` configuration."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from archiver.config import MetricsSettings, parse_config
from archiver.errors import (
    ConfigError,
    IncompleteDownload,
    NotReady,
    StateError,
    StoreError,
    TransientStoreError,
    UnsafeArtifactUrl,
    VendorError,
    VendorUnavailable,
)
from archiver.health import Readiness
from archiver.metrics import PrometheusObserver
from archiver.observe import (
    NO_OBSERVER,
    FailureReason,
    FanOut,
    NullObserver,
    failure_reason,
    fan_out,
)
from archiver.retry import RetryPolicy, call_with_retries
from archiver.store.memory import MemoryStore
from archiver.store.observed import ObservedStore

ARCHIVED: dict[str, Any] = {"session_id": "s1", "seconds": 0.5, "ledger_seq": 0, "rearchive": False}
FAILED: dict[str, Any] = {"session_id": "s2", "error": "e", "attempts": 1, "max_attempts": 5}


class Recorder(NullObserver):
    def __init__(self, name: str, log: list[tuple[str, str, Any]]) -> None:
        self.name = name
        self.log = log

    def session_archived(self, source: str, *, artifacts: int, size: int, **_: Any) -> None:
        self.log.append((self.name, "archived", (source, artifacts, size)))

    def vendor_request(self, vendor: str, *, status: int | None) -> None:
        self.log.append((self.name, "request", (vendor, status)))

    def store_bytes_in_flight(self, delta: int) -> None:
        self.log.append((self.name, "in_flight", delta))


def test_fan_out_hands_every_event_to_each_observer_in_order() -> None:
    log: list[tuple[str, str, Any]] = []
    both = fan_out([Recorder("a", log), NO_OBSERVER, Recorder("b", log)])

    both.session_archived("perfecto", artifacts=3, size=10, **ARCHIVED)
    both.vendor_request("perfecto", status=None)

    assert isinstance(both, FanOut) and len(both.observers) == 2
    assert log == [
        ("a", "archived", ("perfecto", 3, 10)),
        ("b", "archived", ("perfecto", 3, 10)),
        ("a", "request", ("perfecto", None)),
        ("b", "request", ("perfecto", None)),
    ]


def test_fan_out_of_none_or_one_is_no_wrapper() -> None:
    one = Recorder("a", [])
    assert fan_out([]) is NO_OBSERVER
    assert fan_out([NO_OBSERVER]) is NO_OBSERVER
    assert fan_out([one, NO_OBSERVER]) is one


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (VendorUnavailable("x", vendor="v", status=503), FailureReason.TRANSIENT),
        (IncompleteDownload("x"), FailureReason.TRANSIENT),
        (VendorError("x", vendor="v", status=404), FailureReason.VENDOR_4XX),
        (StoreError("x"), FailureReason.STORE),
        (TransientStoreError("x"), FailureReason.STORE),
        (UnsafeArtifactUrl("x"), FailureReason.REFUSED_URL),
        (NotReady("x"), FailureReason.NOT_READY),
        (StateError("x"), FailureReason.OTHER),
        (RuntimeError("a bug"), FailureReason.OTHER),
    ],
)
def test_failure_reasons(error: Exception, reason: FailureReason) -> None:
    assert failure_reason(error) is reason


def value(metrics: PrometheusObserver, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_prometheus_counts_simulated_events() -> None:
    metrics = PrometheusObserver(["perfecto", "devrev"], vendors=["perfecto", "devrev"])

    metrics.pass_started("perfecto")
    metrics.session_held_back("perfecto", session_id="s1")
    metrics.session_held_back("perfecto", session_id="s1")
    metrics.session_archived("perfecto", artifacts=4, size=1000, **ARCHIVED)
    metrics.session_archived("perfecto", artifacts=2, size=500, **ARCHIVED)
    metrics.session_failed("perfecto", FailureReason.REFUSED_URL, **FAILED)
    for status in (200, 200, 429, 503, None, 404):
        metrics.vendor_request("perfecto", status=status)
    metrics.vendor_retry("perfecto")
    metrics.ledger_appended(7)
    metrics.ledger_appended(5)  # finished later, appended earlier: the head stays
    metrics.watermark_moved("perfecto", datetime(2026, 11, 20, tzinfo=UTC))
    metrics.pass_finished("perfecto", ok=True, seconds=42.0)
    metrics.pass_started("devrev")
    metrics.pass_finished("devrev", ok=False, seconds=3.0)

    assert value(metrics, "archiver_sessions_archived_total", source="perfecto") == 2
    assert value(metrics, "archiver_artifacts_archived_total", source="perfecto") == 6
    assert value(metrics, "archiver_bytes_archived_total", source="perfecto") == 1500
    assert value(metrics, "archiver_sessions_archived_total", source="devrev") == 0
    assert (
        value(metrics, "archiver_session_failures_total", source="perfecto", reason="refused_url")
        == 1
    )
    assert value(metrics, "archiver_session_failures_total", source="devrev", reason="store") == 0
    assert value(metrics, "archiver_sessions_held_back", source="perfecto") == 2
    requests = {
        status_class: value(
            metrics, "archiver_vendor_requests_total", vendor="perfecto", status_class=status_class
        )
        for status_class in ("2xx", "4xx", "5xx", "error")
    }
    assert requests == {"2xx": 2, "4xx": 2, "5xx": 1, "error": 1}
    assert value(metrics, "archiver_rate_limited_total", vendor="perfecto") == 1
    assert value(metrics, "archiver_rate_limited_total", vendor="devrev") == 0
    assert value(metrics, "archiver_vendor_retries_total", vendor="perfecto") == 1
    assert value(metrics, "archiver_ledger_head_sequence") == 7
    assert value(metrics, "archiver_watermark_timestamp_seconds", source="perfecto") == (
        datetime(2026, 11, 20, tzinfo=UTC).timestamp()
    )
    assert value(metrics, "archiver_passes_total", source="perfecto", result="ok") == 1
    assert value(metrics, "archiver_passes_total", source="devrev", result="error") == 1
    assert value(metrics, "archiver_pass_duration_seconds_sum", source="perfecto") == 42
    assert (
        value(metrics, "archiver_pass_duration_seconds_bucket", source="perfecto", le="60.0") == 1
    )
    assert (
        value(metrics, "archiver_pass_duration_seconds_bucket", source="perfecto", le="30.0") == 0
    )
    assert value(metrics, "archiver_last_pass_success_timestamp_seconds", source="perfecto")
    assert value(metrics, "archiver_last_pass_success_timestamp_seconds", source="devrev") is None


def test_held_back_is_what_the_last_pass_held_back() -> None:
    metrics = PrometheusObserver(["perfecto"])
    metrics.pass_started("perfecto")
    metrics.session_held_back("perfecto", session_id="s1")
    metrics.pass_finished("perfecto", ok=True, seconds=1.0)
    metrics.pass_started("perfecto")
    assert value(metrics, "archiver_sessions_held_back", source="perfecto") == 1
    metrics.pass_finished("perfecto", ok=True, seconds=1.0)
    assert value(metrics, "archiver_sessions_held_back", source="perfecto") == 0


def test_labels_are_bounded_and_registries_are_separate() -> None:
    first, second = PrometheusObserver(["perfecto"]), PrometheusObserver(["perfecto"])
    first.session_archived("perfecto", artifacts=1, size=1, **ARCHIVED)
    first.store_write("commit", seconds=0.01)
    assert value(second, "archiver_sessions_archived_total", source="perfecto") == 0
    allowed = {"source", "vendor", "reason", "status_class", "result", "operation", "le"}
    for family in first.registry.collect():
        for found in family.samples:
            assert set(found.labels) <= allowed, found
    assert b"archiver_store_write_seconds_bucket" in first.exposition()


async def test_readiness_needs_a_recent_successful_pass_of_every_source() -> None:
    now = [1000.0]
    readiness = Readiness(
        ["perfecto", "devrev"], interval_seconds=60, max_missed_passes=3, clock=lambda: now[0]
    )

    async def failed() -> list[str]:
        return [check.name for check in await readiness.checks() if not check.ok]

    async def detail(index: int) -> str:
        return (await readiness.checks())[index].detail

    assert await failed() == ["startup", "source:perfecto", "source:devrev"]
    readiness.started_up = True
    readiness.pass_finished("perfecto", ok=True, seconds=1.0)
    readiness.pass_finished("devrev", ok=False, seconds=1.0)
    assert await failed() == ["source:devrev"]
    assert "the last pass failed" in await detail(2)
    readiness.pass_finished("devrev", ok=True, seconds=1.0)
    assert await failed() == []
    now[0] += 180  # three intervals: still within
    assert await failed() == []
    readiness.pass_finished("devrev", ok=True, seconds=1.0)
    now[0] += 1
    assert await failed() == ["source:perfecto"]
    assert "more than 3 intervals (180 s)" in await detail(1)


async def test_readiness_asks_the_store_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    readiness = Readiness([], interval_seconds=60, max_missed_passes=3)
    readiness.started_up = True
    answers: list[str] = []

    async def probe() -> None:
        answers.append("asked")
        if len(answers) == 2:
            raise StoreError("s3://bucket: AccessDenied")
        if len(answers) == 3:
            await asyncio.sleep(10)

    readiness.store_probe = probe
    monkeypatch.setattr("archiver.health.STORE_CHECK_SECONDS", 0.05)

    first = await readiness.checks()
    assert [(check.name, check.ok) for check in first] == [("startup", True), ("store", True)]
    assert (await readiness.checks())[1].detail == "s3://bucket: AccessDenied"
    assert (await readiness.checks())[1].detail == "no answer within 0.05 s"
    assert len(answers) == 3


async def test_observed_store_reports_writes_and_lets_go_of_aborted_bytes() -> None:
    metrics = PrometheusObserver()
    store = ObservedStore(MemoryStore(), metrics)

    await store.put_bytes("a/one", b"x" * 10)
    async with store.open_writer("a/two") as writer:
        await writer.write(b"y" * 5, b"z" * 5)
        assert value(metrics, "archiver_store_bytes_in_flight") == 10
        await writer.commit(sha256=hashlib.sha256(b"y" * 5 + b"z" * 5).hexdigest(), size=10)
        assert value(metrics, "archiver_store_bytes_in_flight") == 0
    with pytest.raises(RuntimeError):
        async with store.open_writer("a/three") as writer:
            await writer.write(b"w" * 7)
            raise RuntimeError("the download broke off")

    assert value(metrics, "archiver_store_bytes_in_flight") == 0
    assert value(metrics, "archiver_store_write_seconds_count", operation="put") == 1
    assert value(metrics, "archiver_store_write_seconds_count", operation="write") == 2
    assert value(metrics, "archiver_store_write_seconds_count", operation="commit") == 1
    assert await store.exists("a/two") and not await store.exists("a/three")


def parse(metrics: dict[str, Any] | None) -> MetricsSettings | None:
    data: dict[str, Any] = {
        "store": {"url": "file:///srv/evidence"},
        "state": {"url": "sqlite:////var/lib/archiver/state.db"},
    }
    if metrics is not None:
        data["metrics"] = metrics
    return parse_config(data, path="archiver.toml", environ={}).metrics


def test_metrics_config() -> None:
    assert parse(None) is None
    assert parse({"readiness_max_missed_passes": 5}) is None
    assert parse({"listen": "127.0.0.1:9464"}) == MetricsSettings(host="127.0.0.1", port=9464)
    assert parse({"listen": "[::1]:9464", "readiness_max_missed_passes": 2}) == MetricsSettings(
        host="::1", port=9464, readiness_max_missed_passes=2
    )


@pytest.mark.parametrize(
    ("metrics", "key", "words"),
    [
        ({"listen": "9464"}, "metrics.listen", "expected HOST:PORT"),
        ({"listen": "127.0.0.1"}, "metrics.listen", "expected HOST:PORT"),
        ({"listen": "127.0.0.1:99999"}, "metrics.listen", "expected HOST:PORT"),
        ({"listen": "127.0.0.1:0"}, "metrics.listen", "port must be 1 to 65535"),
        ({"listen": "http://127.0.0.1:9464/"}, "metrics.listen", "expected HOST:PORT"),
        ({"listen": 9464}, "metrics.listen", "expected a string"),
        ({"readiness_max_missed_passes": 0}, "metrics.readiness_max_missed_passes", "at least 1"),
        ({"listn": "127.0.0.1:9464"}, "metrics.listn", "unknown key"),
    ],
)
def test_metrics_config_errors_name_the_key_and_file(
    metrics: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(metrics)
    message = str(raised.value)
    assert f"key '{key}' in archiver.toml" in message and words in message
    assert "\n" not in message


async def test_each_retry_is_reported_before_its_wait() -> None:
    retried: list[int] = []
    calls: list[int] = []
    policy = RetryPolicy(
        attempts=4, backoff_initial=0.001, backoff_max=0.002, on_retry=lambda: retried.append(1)
    )

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise VendorUnavailable("busy", vendor="v", status=503)
        return "done"

    assert await call_with_retries(policy, flaky) == "done"
    assert len(retried) == 2
