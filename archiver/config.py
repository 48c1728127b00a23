"""TOML configuration parsed once, at the edge, into frozen typed records.

Every table of the file is one frozen dataclass, each key declared once with its default,
its bounds and a one-line description: the shared tables here, each vendor's settings
beside its source (``archiver/sources/<vendor>.py``, registered in
:data:`archiver.sources.registry.SOURCES`). The same declarations read the file, build the
records the code passes around, and write ``config/archiver.example.toml`` and
``docs/configuration.md`` (``python -m archiver.config_docs``).

The records are plain frozen dataclasses whose fields carry pydantic (v2) declarations in
``Annotated`` (the building blocks are in :mod:`archiver.configkeys`); pydantic checks a
file against them, and nothing else: code that builds a record itself (the demo, a test
asking a vendor for too much) is not second-guessed. pydantic rather than msgspec because
it reports every mistake as a structured error (the path to the key, the kind of mistake
and its bounds) that becomes our own one-line message instead of a string to pick apart;
because its validators see a context (how tokens are read, whether the sources are) and
can check one key against another; because it validates standard dataclasses (so
``dataclasses.replace`` and slots keep working); and because it describes the schema
(types, bounds, defaults, descriptions) the docs are generated from.

Every mistake becomes a :class:`ConfigError` naming the dotted key and the file, on one
line, without pydantic's wording, links or input. Tokens are never read from the file: a
source names the environment variable that holds its token (``token_env``) and the token
is read from there into a :class:`Secret`, which never shows its value in a ``repr``, a
log line or a dump.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, get_args, get_type_hints
from urllib.parse import urlsplit

from pydantic import (
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from archiver.configkeys import (
    MIB,
    NOT_IN_FILE,
    TABLE,
    UNKNOWN_KEY,
    Flag,
    Hint,
    HttpUrl,
    Int,
    Number,
    OneOf,
    Reading,
    Scaled,
    Table,
    Text,
    field_metadata,
    kind_of,
    problem,
    reading_of,
    url_parts,
    wording,
)
from archiver.errors import ConfigError

# Re-exported: the shared tables are part of the file this module reads.
from archiver.settings import HttpSettings as HttpSettings
from archiver.settings import Secret as Secret
from archiver.settings import SourceSettings as SourceSettings
from archiver.sources.registry import SOURCES
from archiver.state import check_state_url
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


# --- The shared tables ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings(Table):
    """Where evidence lands: a local folder or an S3 bucket (with an optional key prefix).
    AWS credentials come from boto3's usual chain: AWS_* variables, ~/.aws, instance roles.
    The S3-only keys apply to every object written (artifacts, manifests, ledger entries)."""

    url: Annotated[
        Text,
        Field(
            description="a folder, file:///absolute/path, or a bucket, s3://bucket/prefix",
            examples=["file:///var/lib/archiver/evidence"],
        ),
    ]
    endpoint_url: Annotated[
        HttpUrl | None,
        Field(
            description="S3-compatible stores (MinIO, Ceph...): their S3 endpoint",
            examples=["http://127.0.0.1:9000"],
        ),
    ] = None
    region: Annotated[Text | None, Field(description="S3 region", examples=["us-east-1"])] = None
    multipart_threshold: Annotated[
        Int,
        Field(
            ge=5,
            validation_alias="multipart_threshold_mib",
            description="S3 objects larger than this go up in parts, as they download",
        ),
        Scaled(MIB, "MiB"),
    ] = 64 * MIB
    multipart_chunksize: Annotated[
        Int,
        Field(
            ge=5,
            validation_alias="multipart_chunksize_mib",
            description="size of those parts (doubled every 1,000 parts)",
        ),
        Scaled(MIB, "MiB"),
    ] = 8 * MIB
    transfer_concurrency: Annotated[
        Int,
        Field(
            ge=1,
            description="parts sent at once across all uploads (and as many other S3 requests)",
        ),
    ] = 8
    spool_dir: Annotated[
        Text | None,
        Field(
            description="S3: where downloads are spooled for upload; it holds what is downloaded "
            "and not yet in S3 (parts sent are punched out where the file system has holes)",
            examples=["/var/tmp"],  # noqa: S108 (an example)
        ),
    ] = None
    object_lock_mode: Annotated[
        str | None,
        OneOf(*OBJECT_LOCK_MODES),
        Field(
            description="S3 only: Object Lock on every object; COMPLIANCE, or GOVERNANCE "
            "(privileged users may lift it); needs a bucket with versioning and Object Lock",
            examples=["COMPLIANCE"],
        ),
    ] = None
    object_lock_days: Annotated[
        Int,
        Field(
            ge=1,
            description="S3 only: days of retention from each write; required with "
            "object_lock_mode, refused without it",
            examples=[2555],
        ),
    ] = 0
    legal_hold: Annotated[
        Flag, Field(description="S3 only: true also puts a legal hold (no expiry) on every object")
    ] = False
    sse: Annotated[
        str | None,
        OneOf(*SSE_ALGORITHMS),
        Field(
            description="S3 only: server-side encryption; unset: the bucket's default",
            examples=["aws:kms"],
        ),
    ] = None
    sse_kms_key_id: Annotated[
        Text | None,
        Field(
            description='S3 only: the KMS key, with sse = "aws:kms" only',
            examples=["arn:aws:kms:eu-west-1:111122223333:key/..."],
        ),
    ] = None
    storage_class: Annotated[
        str | None,
        OneOf(*STORAGE_CLASSES),
        Field(description="S3 only: storage class of every object", examples=["STANDARD_IA"]),
    ] = None
    single_writer: Annotated[
        Flag,
        Field(
            description="S3 only: true promises that no other archiver writes to this bucket; "
            "only needed where the server honours neither conditional writes nor versioning",
        ),
    ] = False
    evidence_page: Annotated[
        Flag,
        Field(
            description="true also writes a readable index.html into each session's folder "
            "(listed in its manifest, written before it): the vendor's record, every file, "
            "screenshots and video in place, for an auditor browsing the store",
        ),
    ] = False

    @field_validator("url")
    @classmethod
    def _store_url(cls, url: str) -> str:
        url_parts(url)
        try:
            check_store_url(url)
        except ValueError as exc:
            raise problem(str(exc)) from None
        return url

    @classmethod
    def _read(cls, data: dict[str, Any], reading: Reading) -> dict[str, Any]:
        url = data.get("url")
        try:  # a URL that is no store URL is the url's own mistake, told by its validator
            scheme = check_store_url(url).scheme if isinstance(url, str) else None
        except ValueError:
            scheme = None
        if scheme is not None and scheme != "s3":
            for key in S3_ONLY_KEYS:
                if key in data:
                    raise problem("applies to s3:// stores only", key=key)
        return data

    @model_validator(mode="after")
    def _protection(self) -> StoreSettings:
        if self.object_lock_mode is not None and self.object_lock_days == 0:
            raise problem("is required with object_lock_mode (days, >= 1)", key="object_lock_days")
        if self.object_lock_mode is None and self.object_lock_days:
            raise problem(
                "needs object_lock_mode (GOVERNANCE or COMPLIANCE)", key="object_lock_days"
            )
        if self.sse_kms_key_id is not None and self.sse != "aws:kms":
            raise problem('needs sse = "aws:kms"', key="sse_kms_key_id")
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSettings(Table):
    """Where archiver keeps what it archived, its watermarks and its failures: a SQLite file
    (one archiver process at a time) or a PostgreSQL database (shared by several replicas;
    TLS settings go in the URL's query: sslmode, sslrootcert...)."""

    url: Annotated[
        Text,
        Field(
            description="sqlite:////absolute/path.db (or sqlite:///relative.db), or "
            "postgresql://user@host:5432/database",
            examples=["sqlite:////var/lib/archiver/state.db"],
        ),
    ]
    password_env: Annotated[
        Text | None,
        Field(
            description="PostgreSQL only: the environment variable holding the database "
            "password (never this file); unset: libpq's own (~/.pgpass, PGPASSWORD...)",
            examples=["ARCHIVER_DB_PASSWORD"],
        ),
    ] = None
    password: Annotated[Secret, NOT_IN_FILE] = field(default=Secret(""), repr=False)
    replica: Annotated[
        Text | None,
        Field(
            description="PostgreSQL only: this archiver's name among the replicas sharing the "
            "database (each has a writer id of its own); unset: the host name",
            examples=["archiver-1"],
        ),
    ] = None
    lease_seconds: Annotated[
        Number,
        Field(
            ge=3,
            description="PostgreSQL only: how long a replica's claim on a session (or on "
            "listing a source) lasts without its heartbeat; then another replica takes over",
        ),
    ] = 60.0

    @field_validator("url")
    @classmethod
    def _state_url(cls, url: str) -> str:
        try:  # first: its messages never show a password the URL may hold
            check_state_url(url)
        except ValueError as exc:
            raise problem(str(exc)) from None
        url_parts(url)
        return url

    @classmethod
    def _refusal(cls, key: str) -> str:
        if key == "password":
            return "passwords are never read from the file; use password_env"
        return UNKNOWN_KEY

    @model_validator(mode="after")
    def _password(self, info: ValidationInfo) -> StateSettings:
        reading = reading_of(info)
        if reading is not None and self.password_env is not None:
            # The state is read by every command that reads vendor tokens and by `status`,
            # which reads none: the password comes from the process's environment then.
            environ = reading.environ if reading.read_tokens else os.environ
            value = environ.get(self.password_env, "")
            if not value:
                raise problem(
                    f"environment variable {self.password_env} is not set or empty",
                    key="password_env",
                )
            # Frozen for everyone else: reading the password is part of building the record.
            object.__setattr__(self, "password", Secret(value))
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings(Table):
    """How the sessions of every source are archived, pass after pass."""

    download_concurrency: Annotated[
        Int, Field(ge=1, description="artifacts downloaded at once, all sources together")
    ] = 16
    max_attempts: Annotated[
        Int, Field(ge=1, description="a failing session is retried on later passes this often")
    ] = 5
    interval_seconds: Annotated[
        Number, Field(ge=1, description="`archiver run`: time between passes")
    ] = 300.0
    shutdown_grace_seconds: Annotated[
        Number, Field(ge=0, description="on SIGTERM, in-flight sessions get this long to finish")
    ] = 30.0
    not_ready_attempts: Annotated[
        Int,
        Field(
            ge=1, description="an artifact answering 204 (not ready) is asked again this often..."
        ),
    ] = 3
    not_ready_delay_seconds: Annotated[
        Number,
        Field(ge=0, description="...this long apart, then the session waits for a later pass"),
    ] = 5.0
    cleanup_incomplete_after_seconds: Annotated[
        Number, Field(ge=0, description="start-up removes unfinished writes older than this")
    ] = 3600.0
    claim_lease_minutes: Annotated[
        Number,
        Field(
            ge=0,
            description="a session another archiver claimed in the store and left without a "
            "manifest this long is taken over",
        ),
    ] = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings(Table):
    """Log lines, on standard error."""

    level: Annotated[
        str,
        OneOf("debug", "info", "warning", "error"),
        Field(description="debug, info, warning or error"),
    ] = "info"
    format: Annotated[
        str,
        OneOf("auto", "json", "console"),
        Field(description="auto (JSON lines unless on a terminal), json or console"),
    ] = "auto"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSettings(Table):
    """`archiver export`: BagIt packages of archived sessions, for auditors."""

    source_organization: Annotated[
        Text | None,
        Field(
            description="who hands the evidence over: bag-info.txt's Source-Organization "
            "and the evidence page's heading; unset: left out",
            examples=["Example Corp, Quality Assurance"],
        ),
    ] = None


def _listen_schema(schema: dict[str, Any]) -> None:
    listen = {
        "type": "string",
        "description": "HOST:PORT to serve on; unset: nothing is served",
        "examples": ["127.0.0.1:9464"],
    }
    schema["properties"] = {"listen": listen, **schema.get("properties", {})}


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings(Table):
    """`archiver run` (not `run --once`) serves /metrics (Prometheus), /healthz and /readyz
    on `listen`; without it, nothing is served."""

    # The record keeps the address read (host, port). A file without `listen` gives port 0,
    # and its Config has no metrics settings at all.

    __pydantic_config__ = ConfigDict(**TABLE, json_schema_extra=_listen_schema)
    FILE_ONLY_KEYS = ("listen",)

    host: Annotated[str, NOT_IN_FILE]
    port: Annotated[int, NOT_IN_FILE]
    readiness_max_missed_passes: Annotated[
        Int,
        Field(
            ge=1,
            description="/readyz fails once a source has had no successful pass for this many "
            "engine.interval_seconds",
        ),
    ] = DEFAULT_MAX_MISSED_PASSES

    @classmethod
    def _read(cls, data: dict[str, Any], reading: Reading) -> dict[str, Any]:
        listen = data.pop("listen", None)
        host, port = ("", 0) if listen is None else _host_port(listen)
        return {**data, "host": host, "port": port}


def _host_port(value: Any) -> tuple[str, int]:
    """``127.0.0.1:9464``, ``[::1]:9464`` or ``localhost:9464``."""
    if not isinstance(value, str):
        raise problem(f"expected a string, got {kind_of(value)}", key="listen")
    expected = f"expected HOST:PORT (e.g. 127.0.0.1:9464), got {value!r}"
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        raise problem(expected, key="listen") from None
    if not parts.hostname or port is None or parts.path or parts.query or parts.username:
        raise problem(expected, key="listen")
    if port == 0:
        raise problem(f"port must be 1 to 65535, got {value!r}", key="listen")
    return parts.hostname, port


# --- The whole file ------------------------------------------------------------------


class _SourceTables:
    """``[sources.NAME]``: one table per registered source, each read by its settings."""

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        tables = core_schema.typed_dict_schema(
            {
                spec.name: core_schema.typed_dict_field(
                    handler.generate_schema(spec.settings), required=False
                )
                for spec in SOURCES
            },
            extra_behavior="forbid",
        )
        return core_schema.no_info_after_validator_function(dict, tables)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config(Table):
    """The whole file: its tables, and the file's path."""

    path: Annotated[str, NOT_IN_FILE] = ""
    store: StoreSettings
    state: StateSettings
    engine: EngineSettings = EngineSettings()
    http: HttpSettings = HttpSettings()  # noqa: RUF009 - frozen, like the others
    log: LogSettings = LogSettings()
    metrics: MetricsSettings | None = None
    export: ExportSettings = ExportSettings()
    sources: Annotated[Mapping[str, SourceSettings], _SourceTables()] = field(default_factory=dict)

    @classmethod
    def _read(cls, data: dict[str, Any], reading: Reading) -> dict[str, Any]:
        sources = data.get("sources")
        if sources is not None and not reading.with_sources:
            if not isinstance(sources, dict):
                raise problem(f"expected a table, got {kind_of(sources)}", key="sources")
            data["sources"] = {}
        return {**data, "path": reading.path}

    @field_validator("metrics", mode="wrap")
    @classmethod
    def _served(cls, value: Any, handler: Callable[[Any], Any]) -> MetricsSettings | None:
        settings: MetricsSettings | None = handler(value)
        return settings if settings is not None and settings.port else None


# --- Reading a file ------------------------------------------------------------------


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


_CONFIG: TypeAdapter[Config] | None = None


def parse_config(
    data: Mapping[str, Any],
    *,
    path: str,
    environ: Mapping[str, str],
    with_sources: bool = True,
) -> Config:
    global _CONFIG
    if _CONFIG is None:
        _CONFIG = TypeAdapter(Config)
    reading = Reading(
        path=path,
        environ=environ,
        read_tokens=not isinstance(environ, _TokensNotRead),
        with_sources=with_sources,
    )
    try:
        return _CONFIG.validate_python(dict(data), context=reading)
    except ValidationError as exc:
        raise config_error(exc, path=path) from None


def config_error(exc: ValidationError, *, path: str | None) -> ConfigError:
    """The first mistake pydantic found, as one line naming the dotted key and the file."""
    error = exc.errors(include_url=False, include_context=True, include_input=True)[0]
    context = error.get("ctx") or {}
    loc = tuple(str(part) for part in error["loc"])
    if context.get("key"):
        loc += (context["key"],)
    message = wording(error)
    hint = _hint(loc)
    if hint is not None:
        message = f"{message} ({hint.text})"
    return ConfigError(message, key=".".join(loc) or None, path=path)


def _hint(loc: tuple[str, ...]) -> Hint | None:
    """The :class:`Hint` of the key at ``loc``, if it has one."""
    table: type[Table] | None = None
    if len(loc) == 3 and loc[0] == "sources":
        table = next((spec.settings for spec in SOURCES if spec.name == loc[1]), None)
    elif len(loc) == 2:
        table = root_tables().get(loc[0])
    name = table.file_keys().get(loc[-1]) if table is not None else None
    if table is None or name is None:
        return None
    metadata = field_metadata(table).get(name, ())
    return next((item for item in metadata if isinstance(item, Hint)), None)


def root_tables() -> dict[str, type[Table]]:
    """The tables beside ``[sources.*]`` (the fields of :class:`Config`), in its order."""
    hints = get_type_hints(Config)
    tables: dict[str, type[Table]] = {}
    for item in dataclasses.fields(Config):
        hint = hints[item.name]
        for kind in get_args(hint) if isinstance(hint, UnionType) else (hint,):
            if isinstance(kind, type) and issubclass(kind, Table):
                tables[item.name] = kind
    return tables
