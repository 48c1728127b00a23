"""TOML configuration parsed once, at the edge, into frozen typed records.

Every default lives in this module. Every mistake becomes a :class:`ConfigError` naming
the dotted key and the file. Tokens are never read from the file: a source names the
environment variable that holds its token (``token_env``) and the token is read from
there into a :class:`Secret`, which never shows its value in a ``repr`` or a log line.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

from archiver.errors import ConfigError
from archiver.state import sqlite_path
from archiver.store import check_store_url

CONFIG_ENV = "ARCHIVER_CONFIG"
OBJECT_LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
SSE_ALGORITHMS = ("AES256", "aws:kms")
STORAGE_CLASSES = (
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "REDUCED_REDUNDANCY",
)
S3_ONLY_KEYS = (
    "object_lock_mode",
    "object_lock_days",
    "legal_hold",
    "sse",
    "sse_kms_key_id",
    "storage_class",
    "single_writer",
)

DEFAULT_MAX_MISSED_PASSES = 3

T = TypeVar("T")


class Secret:
    """A credential. ``str()``/``repr()`` never show it; ``reveal()`` does, on purpose."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    api_timeout: float = 120.0
    attempts: int = 6
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    chunk_size: int = 1024 * 1024
    max_artifact_bytes: int = 0
    artifact_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    download_concurrency: int = 16
    max_attempts: int = 5
    interval_seconds: float = 300.0
    shutdown_grace_seconds: float = 30.0
    not_ready_attempts: int = 3
    not_ready_delay_seconds: float = 5.0
    cleanup_incomplete_after_seconds: float = 3600.0
    claim_lease_minutes: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_chunksize: int = 8 * 1024 * 1024
    transfer_concurrency: int = 8
    spool_dir: str | None = None
    # S3 only: applied to every object written (artifacts, manifests, ledger entries).
    object_lock_mode: str | None = None
    object_lock_days: int = 0
    legal_hold: bool = False
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    single_writer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSettings:
    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSettings:
    """Settings every source shares. Vendor-specific keys live in subclasses."""

    base_url: str
    token: Secret = field(repr=False)
    session_concurrency: int = 8
    backfill_days: float = 30.0
    overlap_minutes: float = 120.0
    pending_max_hours: float = 48.0
    trusted_hosts: tuple[str, ...] = ()
    # How long the vendor keeps a session; `status` and the metrics warn when the oldest
    # one not archived yet has fewer than retention_warn_days left.
    retention_days: float = 30.0
    retention_warn_days: float = 7.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PerfectoSettings(SourceSettings):
    auth_header: str = "PERFECTO-AUTHORIZATION"
    window_hours: float = 24.0
    page_cap: int = 1000
    pdf_report: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class DevRevSettings(SourceSettings):
    version_keys: tuple[str, ...] = ()
    session_type: str = "mobile"
    platform: str | None = None
    page_limit: int = 50
    scope: str | None = None
    page_cap: int = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TestObjectSettings(SourceSettings):
    __test__ = False  # not a pytest test class, whatever its name says
    username: str = ""
    page_limit: int = 50
    test_reports: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class TestmoSettings(SourceSettings):
    __test__ = False  # not a pytest test class, whatever its name says
    project_ids: tuple[int, ...] = ()
    per_page: int = 100
    expands: tuple[str, ...] = (
        "configs",
        "field_values",
        "issues",
        "milestones",
        "states",
        "statuses",
        "templates",
        "users",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EkranSettings(SourceSettings):
    auth_header: str = "X-Ekran-Token"
    session_count: int = 1000
    window_hours: float = 168.0
    max_session_hours: float = 24.0
    settle_minutes: float = 60.0
    page_cap: int = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    """``archiver run`` serves /metrics, /healthz and /readyz on ``host``:``port``."""

    host: str
    port: int
    readiness_max_missed_passes: int = DEFAULT_MAX_MISSED_PASSES


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: str
    store: StoreSettings
    state: StateSettings
    engine: EngineSettings = EngineSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings | None = None
    sources: Mapping[str, SourceSettings] = field(default_factory=dict)


class _Table:
    """One TOML table being read: typed getters that name the dotted key on error."""

    def __init__(self, data: Mapping[str, Any], *, name: str, path: str) -> None:
        self._data = data
        self._name = name
        self._path = path
        self._seen: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self._name}.{key}" if self._name else key

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, key=self.key(key), path=self._path)

    def _get(self, key: str, kinds: tuple[type, ...], kind_name: str) -> Any:
        self._seen.add(key)
        if key not in self._data:
            return None
        value = self._data[key]
        # bool is an int subclass: ``interval_seconds = true`` must not pass as 1.
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(key, f"expected {kind_name}, got a boolean")
        if not isinstance(value, kinds):
            raise self.error(key, f"expected {kind_name}, got {type(value).__name__}")
        return value

    def has(self, key: str) -> bool:
        return key in self._data

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key, (str,), "a string")
        if value is not None and not value.strip():
            raise self.error(key, "must not be empty")
        return value if value is not None else default

    def required_string(self, key: str) -> str:
        value = self.string(key)
        if value is None:
            raise self.error(key, "is required")
        return value

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = self._get(key, (int,), "an integer")
        if value is None:
            return default
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return int(value)

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self._get(key, (int, float), "a number")
        if value is None:
            return default
        if not math.isfinite(value):
            raise self.error(key, f"must be a finite number, got {value}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, (bool,), "true or false")
        return default if value is None else bool(value)

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key, (list, str), "a list of strings")
        if value is None:
            return default
        items = [value] if isinstance(value, str) else value
        if not all(isinstance(item, str) and item for item in items):
            raise self.error(key, "expected a list of non-empty strings")
        return tuple(items)

    def integers(self, key: str) -> tuple[int, ...]:
        value = self._get(key, (list, int), "a list of integers")
        if value is None:
            return ()
        items = [value] if isinstance(value, int) else value
        if not all(isinstance(item, int) and not isinstance(item, bool) for item in items):
            raise self.error(key, "expected a list of integers")
        return tuple(items)

    def url(self, key: str, value: str) -> SplitResult:
        """``value`` split into its parts; a URL urllib cannot parse is this key's error."""
        try:
            parts = urlsplit(value)
            _ = parts.port  # a port out of range is only noticed here
        except ValueError as exc:
            raise self.error(key, f"not a valid URL ({exc}): {value!r}") from exc
        return parts

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(key, default) or default
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def table(self, key: str) -> _Table | None:
        value = self._get(key, (dict,), "a table")
        if value is None:
            return None
        return _Table(value, name=self.key(key), path=self._path)

    def reject_unknown(self) -> None:
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise self.error(unknown[0], "unknown key (check the spelling)")


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    with_sources: bool = True,
    read_tokens: bool = True,
) -> Config:
    """Read the TOML file at ``path`` (or ``$ARCHIVER_CONFIG``) into a :class:`Config`.

    ``with_sources=False`` skips the ``[sources.*]`` tables (and so needs no vendor token):
    for commands that only read the store, such as ``verify`` and ``show``.
    ``read_tokens=False`` reads the sources' settings but no token (every ``token`` is
    empty): for ``status``, which never calls a vendor.
    """
    chosen = str(path) if path else os.environ.get(CONFIG_ENV)
    if not chosen:
        raise ConfigError(f"no configuration file: pass --config PATH or set {CONFIG_ENV}")
    try:
        raw = Path(chosen).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", path=chosen) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=chosen) from exc
    environ: Mapping[str, str] = os.environ if read_tokens else _TokensNotRead()
    return parse_config(data, path=chosen, environ=environ, with_sources=with_sources)


class _TokensNotRead(dict[str, str]):
    """The environment given to the source parsers when no token is to be read."""


def parse_config(
    data: Mapping[str, Any],
    *,
    path: str,
    environ: Mapping[str, str],
    with_sources: bool = True,
) -> Config:
    root = _Table(data, name="", path=path)
    store = _store(_required_table(root, "store"))
    state = _state(_required_table(root, "state"))
    engine = _engine(root.table("engine"))
    http = _http(root.table("http"))
    log = _log(root.table("log"))
    metrics = _metrics(root.table("metrics"))
    sources_table = root.table("sources")
    sources = _sources(sources_table, environ) if sources_table and with_sources else {}
    root.reject_unknown()
    return Config(
        path=path,
        store=store,
        state=state,
        engine=engine,
        http=http,
        log=log,
        metrics=metrics,
        sources=sources,
    )


def _required_table(root: _Table, key: str) -> _Table:
    table = root.table(key)
    if table is None:
        raise root.error(key, "table is required")
    return table


def _store(table: _Table) -> StoreSettings:
    url = table.required_string("url")
    table.url("url", url)
    try:
        scheme = check_store_url(url).scheme
    except ValueError as exc:
        raise table.error("url", str(exc)) from None
    mib = 1024 * 1024
    defaults = StoreSettings(url=url)
    settings = StoreSettings(
        url=url,
        endpoint_url=_http_url(table, "endpoint_url", table.string("endpoint_url")),
        region=table.string("region"),
        multipart_threshold=table.integer(
            "multipart_threshold_mib", defaults.multipart_threshold // mib, minimum=5
        )
        * mib,
        multipart_chunksize=table.integer(
            "multipart_chunksize_mib", defaults.multipart_chunksize // mib, minimum=5
        )
        * mib,
        transfer_concurrency=table.integer(
            "transfer_concurrency", defaults.transfer_concurrency, minimum=1
        ),
        spool_dir=table.string("spool_dir"),
        **_s3_protection(table),
    )
    if scheme != "s3":
        for key in S3_ONLY_KEYS:
            if table.has(key):
                raise table.error(key, "applies to s3:// stores only")
    table.reject_unknown()
    return settings


def _s3_protection(table: _Table) -> dict[str, Any]:
    mode = _optional_choice(table, "object_lock_mode", OBJECT_LOCK_MODES)
    days = table.integer("object_lock_days", 0, minimum=1 if table.has("object_lock_days") else 0)
    if mode is not None and days == 0:
        raise table.error("object_lock_days", "is required with object_lock_mode (days, >= 1)")
    if mode is None and days:
        raise table.error("object_lock_days", "needs object_lock_mode (GOVERNANCE or COMPLIANCE)")
    sse = _optional_choice(table, "sse", SSE_ALGORITHMS)
    kms_key_id = table.string("sse_kms_key_id")
    if kms_key_id is not None and sse != "aws:kms":
        raise table.error("sse_kms_key_id", 'needs sse = "aws:kms"')
    return {
        "object_lock_mode": mode,
        "object_lock_days": days,
        "legal_hold": table.boolean("legal_hold", False),
        "sse": sse,
        "sse_kms_key_id": kms_key_id,
        "storage_class": _optional_choice(table, "storage_class", STORAGE_CLASSES),
        "single_writer": table.boolean("single_writer", False),
    }


def _state(table: _Table) -> StateSettings:
    url = table.required_string("url")
    table.url("url", url)
    try:
        sqlite_path(url)
    except ValueError as exc:
        raise table.error("url", str(exc)) from None
    table.reject_unknown()
    return StateSettings(url=url)


def _engine(table: _Table | None) -> EngineSettings:
    if table is None:
        return EngineSettings()
    defaults = EngineSettings()
    settings = EngineSettings(
        download_concurrency=table.integer(
            "download_concurrency", defaults.download_concurrency, minimum=1
        ),
        max_attempts=table.integer("max_attempts", defaults.max_attempts, minimum=1),
        interval_seconds=table.number("interval_seconds", defaults.interval_seconds, minimum=1),
        shutdown_grace_seconds=table.number(
            "shutdown_grace_seconds", defaults.shutdown_grace_seconds
        ),
        not_ready_attempts=table.integer(
            "not_ready_attempts", defaults.not_ready_attempts, minimum=1
        ),
        not_ready_delay_seconds=table.number(
            "not_ready_delay_seconds", defaults.not_ready_delay_seconds
        ),
        cleanup_incomplete_after_seconds=table.number(
            "cleanup_incomplete_after_seconds", defaults.cleanup_incomplete_after_seconds
        ),
        claim_lease_minutes=table.number("claim_lease_minutes", defaults.claim_lease_minutes),
    )
    table.reject_unknown()
    return settings


def _http(table: _Table | None) -> HttpSettings:
    if table is None:
        return HttpSettings()
    defaults = HttpSettings()
    settings = HttpSettings(
        connect_timeout=table.number("connect_timeout", defaults.connect_timeout, minimum=0.1),
        read_timeout=table.number("read_timeout", defaults.read_timeout, minimum=0.1),
        api_timeout=table.number("api_timeout", defaults.api_timeout, minimum=0.1),
        attempts=table.integer("attempts", defaults.attempts, minimum=1),
        backoff_initial=table.number("backoff_initial", defaults.backoff_initial),
        backoff_max=table.number("backoff_max", defaults.backoff_max),
        chunk_size=table.integer("chunk_size_kib", defaults.chunk_size // 1024, minimum=4) * 1024,
        max_artifact_bytes=table.integer("max_artifact_mib", 0) * 1024 * 1024,
        artifact_hosts=table.strings("artifact_hosts"),
    )
    table.reject_unknown()
    return settings


def _log(table: _Table | None) -> LogSettings:
    if table is None:
        return LogSettings()
    settings = LogSettings(
        level=table.choice("level", "info", ("debug", "info", "warning", "error")),
        format=table.choice("format", "auto", ("auto", "json", "console")),
    )
    table.reject_unknown()
    return settings


def _metrics(table: _Table | None) -> MetricsSettings | None:
    """None (nothing served) unless ``listen`` is set."""
    if table is None:
        return None
    listen = table.string("listen")
    max_missed = table.integer(
        "readiness_max_missed_passes",
        DEFAULT_MAX_MISSED_PASSES,
        minimum=1,
    )
    table.reject_unknown()
    if listen is None:
        return None
    host, port = _host_port(table, "listen", listen)
    return MetricsSettings(host=host, port=port, readiness_max_missed_passes=max_missed)


def _host_port(table: _Table, key: str, value: str) -> tuple[str, int]:
    """``127.0.0.1:9464``, ``[::1]:9464`` or ``localhost:9464``."""
    expected = f"expected HOST:PORT (e.g. 127.0.0.1:9464), got {value!r}"
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        raise table.error(key, expected) from None
    if not parts.hostname or port is None or parts.path or parts.query or parts.username:
        raise table.error(key, expected)
    if port == 0:
        raise table.error(key, f"port must be 1 to 65535, got {value!r}")
    return parts.hostname, port


SourceParser = Callable[[_Table, Mapping[str, str]], SourceSettings]


def _sources(table: _Table, environ: Mapping[str, str]) -> dict[str, SourceSettings]:
    sources: dict[str, SourceSettings] = {}
    for name, parser in SOURCE_PARSERS.items():
        source_table = table.table(name)
        if source_table is not None:
            sources[name] = parser(source_table, environ)
            source_table.reject_unknown()
    table.reject_unknown()
    return sources


def _common(table: _Table, environ: Mapping[str, str], default_token_env: str) -> dict[str, Any]:
    base_url = table.required_string("base_url")
    _http_url(table, "base_url", base_url)
    defaults = SourceSettings(base_url=base_url, token=Secret(""))
    return {
        "base_url": base_url.rstrip("/"),
        "token": _token(table, environ, default_token_env),
        "session_concurrency": table.integer(
            "session_concurrency", defaults.session_concurrency, minimum=1
        ),
        "backfill_days": table.number("backfill_days", defaults.backfill_days),
        "overlap_minutes": table.number("overlap_minutes", defaults.overlap_minutes),
        "pending_max_hours": table.number("pending_max_hours", defaults.pending_max_hours),
        "trusted_hosts": table.strings("trusted_hosts"),
        **_retention(table, defaults),
    }


def _retention(table: _Table, defaults: SourceSettings) -> dict[str, float]:
    days = table.number("retention_days", defaults.retention_days)
    if days <= 0:
        raise table.error("retention_days", "must be more than 0")
    warn = table.number("retention_warn_days", defaults.retention_warn_days)
    if warn >= days:
        raise table.error("retention_warn_days", f"must be less than retention_days ({days:g})")
    return {"retention_days": days, "retention_warn_days": warn}


def _token(table: _Table, environ: Mapping[str, str], default_env: str) -> Secret:
    if table.has("token"):
        raise table.error("token", "tokens are never read from the file; use token_env")
    variable = table.string("token_env", default_env) or default_env
    if isinstance(environ, _TokensNotRead):
        return Secret("")
    value = environ.get(variable, "")
    if not value.strip():
        raise table.error("token_env", f"environment variable {variable} is not set or empty")
    return Secret(value.strip())


def _http_url(table: _Table, key: str, value: str | None) -> str | None:
    if value is None:
        return None
    parts = table.url(key, value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise table.error(key, f"expected an http(s) URL, got {value!r}")
    return value


def _perfecto(table: _Table, environ: Mapping[str, str]) -> PerfectoSettings:
    defaults = PerfectoSettings(base_url="", token=Secret(""))
    return PerfectoSettings(
        **_common(table, environ, "PERFECTO_TOKEN"),
        auth_header=_header_name(table, "auth_header", defaults.auth_header),
        window_hours=_bounded(table, "window_hours", defaults.window_hours, 0.01, 24.0),
        page_cap=table.integer("page_cap", defaults.page_cap, minimum=1),
        pdf_report=table.boolean("pdf_report", defaults.pdf_report),
    )


def _header_name(table: _Table, key: str, default: str) -> str:
    header = table.string(key, default) or default
    if not (header.isascii() and header.replace("-", "").replace("_", "").isalnum()):
        raise table.error(key, f"not a valid header name: {header!r}")
    return header


def _bounded(table: _Table, key: str, default: float, low: float, high: float) -> float:
    value = table.number(key, default, minimum=low)
    if value > high:
        raise table.error(key, f"must be at most {high}, got {value}")
    return value


def _devrev(table: _Table, environ: Mapping[str, str]) -> DevRevSettings:
    defaults = DevRevSettings(base_url="", token=Secret(""))
    version_keys = table.strings("version_key")
    if not version_keys:
        raise table.error("version_key", "is required (the app id, or a list of app ids)")
    return DevRevSettings(
        **_common(table, environ, "DEVREV_TOKEN"),
        version_keys=version_keys,
        session_type=table.choice("type", defaults.session_type, ("mobile", "web")),
        platform=_optional_choice(table, "platform", ("android", "ios", "web")),
        page_limit=_page_limit(table, defaults.page_limit),
        scope=table.string("scope"),
        page_cap=table.integer("page_cap", defaults.page_cap, minimum=1),
    )


def _page_limit(table: _Table, default: int) -> int:
    value = table.integer("limit", default, minimum=1)
    if value > 100:
        raise table.error("limit", f"must be at most 100, got {value}")
    return value


def _optional_choice(table: _Table, key: str, choices: tuple[str, ...]) -> str | None:
    if not table.has(key):
        table.string(key)  # marks the key as known
        return None
    return table.choice(key, choices[0], choices)


def _testobject(table: _Table, environ: Mapping[str, str]) -> TestObjectSettings:
    defaults = TestObjectSettings(base_url="", token=Secret(""))
    return TestObjectSettings(
        **_common(table, environ, "TESTOBJECT_API_KEY"),
        username=table.required_string("username"),
        page_limit=table.integer("limit", defaults.page_limit, minimum=1),
        test_reports=table.boolean("test_reports", defaults.test_reports),
    )


def _testmo(table: _Table, environ: Mapping[str, str]) -> TestmoSettings:
    defaults = TestmoSettings(base_url="", token=Secret(""))
    project_ids = table.integers("project_ids")
    if not project_ids:
        raise table.error("project_ids", "is required (a list of Testmo project ids)")
    per_page = table.integer("per_page", defaults.per_page, minimum=1)
    if per_page not in (15, 25, 50, 100):
        raise table.error("per_page", f"must be one of 15, 25, 50, 100; got {per_page}")
    return TestmoSettings(
        **_common(table, environ, "TESTMO_TOKEN"),
        project_ids=project_ids,
        per_page=per_page,
        expands=table.strings("expands", defaults.expands),
    )


def _ekran(table: _Table, environ: Mapping[str, str]) -> EkranSettings:
    defaults = EkranSettings(base_url="", token=Secret(""))
    count = table.integer("session_count", defaults.session_count, minimum=1)
    if count > 1000:
        raise table.error(
            "session_count", f"must be at most 1000 (the API refuses more), got {count}"
        )
    return EkranSettings(
        **_common(table, environ, "EKRAN_TOKEN"),
        auth_header=_header_name(table, "auth_header", defaults.auth_header),
        session_count=count,
        window_hours=_bounded(table, "window_hours", defaults.window_hours, 0.01, 24.0 * 31),
        max_session_hours=table.number(
            "max_session_hours", defaults.max_session_hours, minimum=0.1
        ),
        settle_minutes=table.number("settle_minutes", defaults.settle_minutes),
        page_cap=table.integer("page_cap", defaults.page_cap, minimum=1),
    )


SOURCE_PARSERS: dict[str, SourceParser] = {
    "perfecto": _perfecto,
    "devrev": _devrev,
    "testobject": _testobject,
    "testmo": _testmo,
    "ekran": _ekran,
}
