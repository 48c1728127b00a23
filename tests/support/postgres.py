"""A PostgreSQL server for the state's tests: a database of its own per test.

The server is ``$ARCHIVER_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/
postgres``), reached as a user allowed to create databases. When no server answers there,
the tests that need one skip, saying so, unless ``ARCHIVER_TEST_POSTGRES_REQUIRED`` is
set (CI sets it): then they fail. The fixture ``postgres_url`` is such a database.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

ADMIN_URL = os.environ.get(
    "ARCHIVER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE_PREFIX = "archiver_test_"


@functools.cache
def unavailable() -> str | None:
    """Why the tests cannot use the server (None when they can)."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        where = urlsplit(ADMIN_URL)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"no PostgreSQL server answers on {where.hostname}:{where.port or 5432}"
            f" (set ARCHIVER_TEST_POSTGRES): {first_line}"
        )
    return None


def database_url(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database() -> str:
    """A new, empty database; its name."""
    name = f"{DATABASE_PREFIX}{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty database (dropped after the test), or a skip."""
    reason = unavailable()
    if reason is not None:
        if os.environ.get("ARCHIVER_TEST_POSTGRES_REQUIRED"):
            pytest.fail(f"{reason}; ARCHIVER_TEST_POSTGRES_REQUIRED is set")
        pytest.skip(reason)
    name = create_database()
    try:
        yield database_url(name)
    finally:
        drop_database(name)
