"""How a key of the configuration file is declared, read and told about when it is wrong.

A table of the file is a :class:`Table`: a plain frozen dataclass whose fields carry
pydantic declarations in ``Annotated`` (type, bounds, alias, description), built from the
types below (:data:`Int`, :data:`Text`, :class:`OneOf`...). pydantic checks a file against
them, with a :class:`Reading` as its context; code that builds a record itself is not
second-guessed. Mistakes are raised as :func:`problem` and worded by :func:`wording`.
The tables themselves are in :mod:`archiver.config` and, for each vendor, beside its
source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, get_args, get_origin, get_type_hints
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    ValidationInfo,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError, PydanticOmit, core_schema

UNKNOWN_KEY = "unknown key (check the spelling)"
KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Reading:
    """The validation context while a file is read; records built in code have none.

    ``environ`` holds the tokens (none are read when ``read_tokens`` is false), and
    ``with_sources`` says whether the ``[sources.*]`` tables are read at all.
    """

    path: str
    environ: Mapping[str, str]
    read_tokens: bool = True
    with_sources: bool = True


def reading_of(info: ValidationInfo) -> Reading | None:
    return info.context if isinstance(info.context, Reading) else None


def problem(message: str, *, key: str | None = None) -> PydanticCustomError:
    """A mistake in the file, worded for its reader; raise it from a validator.

    ``key`` names the key to blame inside the table a model validator checks (a field
    validator's mistakes are its own key's).
    """
    return PydanticCustomError("config", "{message}", {"message": message, "key": key})


def kind_of(value: Any) -> str:
    return "a boolean" if isinstance(value, bool) else type(value).__name__


class _NotInFile:
    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        raise PydanticOmit  # as SkipJsonSchema does


NOT_IN_FILE = _NotInFile()
"""Marks a field set by the code (a token, a parsed address), never a key of the file."""


@dataclass(frozen=True, slots=True)
class Hint:
    """Said after any mistake in this key, in parentheses: what the key wants."""

    text: str


@dataclass(frozen=True, slots=True)
class Scaled:
    """The file gives this key in ``unit`` (its name says so: ``chunk_size_kib``), the
    record keeps bytes. Its bounds are the file's."""

    factor: int
    unit: str

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        def scale(value: int) -> int:
            return value * self.factor

        return core_schema.no_info_after_validator_function(scale, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "x-unit": self.unit, "x-scale": self.factor}


class OneOf:
    """The value must be one of ``choices`` (shown as the schema's ``enum``)."""

    def __init__(self, *choices: str | int) -> None:
        self.choices = choices

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        def check(value: Any) -> Any:
            if value is not None and value not in self.choices:
                listed = ", ".join(str(choice) for choice in self.choices)
                raise problem(f"must be one of {listed}; got {value!r}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "enum": list(self.choices)}


def _not_blank(value: str) -> str:
    if not value.strip():
        raise problem("must not be empty")
    return value


def _strings(value: Any) -> Any:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(item, str) and item for item in items
    ):
        raise problem("expected a list of non-empty strings")
    return tuple(items)


def _integers(value: Any) -> Any:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in items
    ):
        raise problem("expected a list of integers")
    return tuple(items)


def url_parts(value: str) -> SplitResult:
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port out of range is only noticed here
    except ValueError as exc:
        raise problem(f"not a valid URL ({exc}): {value!r}") from None
    return parts


def _http_url(value: str) -> str:
    parts = url_parts(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise problem(f"expected an http(s) URL, got {value!r}")
    return value


def _header_name(value: str) -> str:
    if not (value.isascii() and value.replace("-", "").replace("_", "").isalnum()):
        raise problem(f"not a valid header name: {value!r}")
    return value


Int = Annotated[int, Strict()]
Number = Annotated[float, Strict()]  # an integer is a number too; NaN and inf are refused
Flag = Annotated[bool, Strict()]
Text = Annotated[str, Strict(), AfterValidator(_not_blank)]
HttpUrl = Annotated[Text, AfterValidator(_http_url)]
HeaderName = Annotated[Text, AfterValidator(_header_name)]
# One string or a list of them; one integer or a list of them.
Strings = Annotated[
    tuple[str, ...], BeforeValidator(_strings, json_schema_input_type=str | list[str])
]
Integers = Annotated[
    tuple[int, ...], BeforeValidator(_integers, json_schema_input_type=int | list[int])
]

TABLE = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    """A table of the file, and the record the code gets from it.

    The record is a plain frozen dataclass: the code builds one as it likes (a test may ask
    for more than a vendor allows), and only a file is checked, by pydantic, against the
    declarations of its fields. The table's keys are the fields (by ``validation_alias``
    where the file's name differs) but for those marked :data:`NOT_IN_FILE`, plus
    :attr:`FILE_ONLY_KEYS`.
    """

    __pydantic_config__ = TABLE
    FILE_ONLY_KEYS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def file_keys(cls) -> dict[str, str]:
        """Each key of the file, with the field it sets (or itself, for a file-only key)."""
        keys = {}
        for name, metadata in field_metadata(cls).items():
            if any(isinstance(item, _NotInFile) for item in metadata):
                continue
            aliases = [item.validation_alias for item in metadata if isinstance(item, FieldInfo)]
            alias = next((alias for alias in aliases if isinstance(alias, str)), None)
            keys[alias or name] = name
        return keys | {key: key for key in cls.FILE_ONLY_KEYS}

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: Any, info: ValidationInfo) -> Any:
        reading = reading_of(info)
        if reading is None:
            return data
        if not isinstance(data, dict):
            raise problem(f"expected a table, got {kind_of(data)}")
        known = cls.file_keys()
        for key in data:
            if key not in known:
                raise problem(cls._refusal(key), key=key)
        return cls._read(dict(data), reading)

    @classmethod
    def _refusal(cls, key: str) -> str:
        return UNKNOWN_KEY

    @classmethod
    def _read(cls, data: dict[str, Any], reading: Reading) -> dict[str, Any]:
        """The table as the file has it (known keys only), made ready for the fields."""
        return data


def field_metadata(table: type[Any]) -> dict[str, tuple[Any, ...]]:
    """Each field of ``table``, in order, with what its ``Annotated`` type says of it."""
    hints = get_type_hints(table, include_extras=True)
    return {
        item.name: get_args(hints[item.name])[1:]
        if get_origin(hints[item.name]) is Annotated
        else ()
        for item in dataclasses.fields(table)
    }


def wording(error: ErrorDetails) -> str:
    kind, value = error["type"], error.get("input")
    context = error.get("ctx") or {}
    if kind == "config":
        return str(context["message"])
    expected = _EXPECTED.get(kind)
    if expected is not None:
        return f"expected {expected}, got {kind_of(value)}"
    if kind in ("missing", "missing_keyword_argument", "too_short"):
        return "table is required" if len(error["loc"]) == 1 else "is required"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return UNKNOWN_KEY
    if kind == "finite_number":
        return f"must be a finite number, got {value}"
    if kind == "greater_than_equal":
        return f"must be at least {context['ge']}, got {value}"
    if kind == "less_than_equal":
        return f"must be at most {context['le']}, got {value}"
    if kind == "greater_than":
        return f"must be more than {context['gt']:g}"
    if kind in ("value_error", "assertion_error"):
        return str(context.get("error", "is not valid"))
    return error["msg"]  # pydantic's own words, without the value given


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a table",
    "dataclass_type": "a table",
    "dataclass_exact_type": "a table",
    "model_type": "a table",
}
