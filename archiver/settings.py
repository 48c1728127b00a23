"""The settings every vendor's source shares, and the pieces they are made of: a
:class:`Secret`, the ``[http]`` table, and :class:`SourceSettings`, which each vendor's
settings extend beside its source (``archiver/sources/<vendor>.py``). The file that holds
them all is read by :mod:`archiver.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import (
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from archiver.configkeys import (
    KIB,
    MIB,
    NOT_IN_FILE,
    TABLE,
    UNKNOWN_KEY,
    HttpUrl,
    Int,
    Number,
    Reading,
    Scaled,
    Strings,
    Table,
    Text,
    problem,
    reading_of,
)


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

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        # Only a Secret is a Secret (never a string from the file); a dump shows '***'.
        return core_schema.is_instance_schema(
            cls, serialization=core_schema.plain_serializer_function_ser_schema(repr)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings(Table):
    """Requests to the vendors. Artifact URLs are always refused unless http(s), and never
    fetched from link-local or cloud metadata addresses (169.254.0.0/16, fe80::/10,
    fd00:ec2::254)."""

    connect_timeout: Annotated[Number, Field(ge=0.1, description="seconds to connect")] = 10.0
    read_timeout: Annotated[
        Number,
        Field(
            ge=0.1,
            description="seconds without a byte before a download is abandoned (and retried)",
        ),
    ] = 60.0
    api_timeout: Annotated[
        Number,
        Field(ge=0.1, description="total seconds for one API call (downloads have no total cap)"),
    ] = 120.0
    attempts: Annotated[
        Int, Field(ge=1, description="tries per request on 429, 5xx, timeouts and resets")
    ] = 6
    backoff_initial: Annotated[
        Number,
        Field(ge=0, description="seconds; exponential with full jitter, Retry-After honoured"),
    ] = 1.0
    backoff_max: Annotated[
        Number, Field(ge=0, description="longest wait between tries, in seconds")
    ] = 60.0
    chunk_size: Annotated[
        Int,
        Field(
            ge=4,
            validation_alias="chunk_size_kib",
            description="downloads are read in pieces of this size",
        ),
        Scaled(KIB, "KiB"),
    ] = 1024 * KIB
    max_artifact_bytes: Annotated[
        Int,
        Field(
            ge=0,
            validation_alias="max_artifact_mib",
            description="0: no limit; a bigger artifact fails its session instead of filling "
            "the disk",
        ),
        Scaled(MIB, "MiB"),
    ] = 0
    artifact_hosts: Annotated[
        Strings,
        Field(
            description="when set, artifacts are fetched only from these hosts (and the API origin)"
        ),
    ] = ()


# --- What every source shares --------------------------------------------------------


def _source_schema(schema: dict[str, Any], settings: type[Any]) -> None:
    properties = schema.get("properties", {})
    if "token_env" in properties:
        properties["token_env"]["default"] = settings.CREDENTIAL_VARIABLE
    if "base_url" in properties:
        properties["base_url"]["examples"] = [settings.BASE_URL_EXAMPLE]


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSettings(Table):
    """The keys every source has. A source is enabled by its table; remove the table to
    disable it."""

    # Each vendor's own keys are in its subclass, beside its source.

    __pydantic_config__ = ConfigDict(**TABLE, json_schema_extra=_source_schema)
    CREDENTIAL_VARIABLE: ClassVar[str] = "SOURCE_TOKEN"
    """The environment variable ``token_env`` names unless set."""
    BASE_URL_EXAMPLE: ClassVar[str] = "https://vendor.example"

    base_url: Annotated[HttpUrl, Field(description="the vendor's API origin (http or https)")]
    token_env: Annotated[
        Text | None,
        Field(
            validate_default=True,
            description="the environment variable holding the token (never this file)",
        ),
    ] = None
    token: Annotated[Secret, NOT_IN_FILE] = field(repr=False)
    trusted_hosts: Annotated[
        Strings, Field(description="other https hosts that may receive the token")
    ] = ()
    requests_per_second: Annotated[
        Number | None,
        Field(
            gt=0,
            description="the most requests a second to the vendor's API, all replicas together "
            "on a shared state (file downloads from other hosts do not count); unset: as the "
            "vendor's rate-limit headers allow",
            examples=[10],
        ),
    ] = None
    backfill_days: Annotated[
        Number, Field(ge=0, description="first start archives this far back")
    ] = 30.0
    overlap_minutes: Annotated[
        Number, Field(ge=0, description="each pass re-lists this far before the watermark")
    ] = 120.0
    session_concurrency: Annotated[
        Int,
        Field(
            ge=1,
            description="sessions fetched at once (downloads wait for "
            "engine.download_concurrency slots); sessions writing their manifest do not count",
        ),
    ] = 8
    pending_max_hours: Annotated[
        Number, Field(ge=0, description="still processing after this long: archived as it is")
    ] = 48.0
    retention_days: Annotated[
        Number,
        Field(
            gt=0,
            description="how long the vendor keeps a session (your contract says; 30 is a "
            "conservative default): `status` and the metrics count the days left for the "
            "oldest one not archived yet",
        ),
    ] = 30.0
    retention_warn_days: Annotated[
        Number,
        Field(
            ge=0,
            description="`status` needs attention under this many days left (less than "
            "retention_days)",
        ),
    ] = 7.0

    @classmethod
    def credentials_note(cls) -> str:
        """Where the source's credentials come from, for the configuration reference."""
        return (
            f"The token is read from `{cls.CREDENTIAL_VARIABLE}` unless `token_env` names "
            "another variable."
        )

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, base_url: str) -> str:
        return base_url.rstrip("/")

    @field_validator("token_env", mode="before")
    @classmethod
    def _default_token_env(cls, value: Any) -> Any:
        return cls.CREDENTIAL_VARIABLE if value is None else value

    @classmethod
    def _refusal(cls, key: str) -> str:
        if key == "token":
            return "tokens are never read from the file; use token_env"
        return UNKNOWN_KEY

    @classmethod
    def _read(cls, data: dict[str, Any], reading: Reading) -> dict[str, Any]:
        return {**data, "token": Secret("")}  # read from token_env once that is checked

    @model_validator(mode="after")
    def _token_and_retention(self, info: ValidationInfo) -> SourceSettings:
        reading = reading_of(info)
        # A source without token_env (its credentials are not a token) reads none.
        if reading is not None and reading.read_tokens and self.token_env is not None:
            variable = str(self.token_env)
            value = reading.environ.get(variable, "").strip()
            if not value:
                raise problem(
                    f"environment variable {variable} is not set or empty", key="token_env"
                )
            # Frozen for everyone else: reading the token is part of building the record.
            object.__setattr__(self, "token", Secret(value))
        if self.retention_warn_days >= self.retention_days:
            raise problem(
                f"must be less than retention_days ({self.retention_days:g})",
                key="retention_warn_days",
            )
        return self
