"""Logging: one stream, one format, for structlog events and standard-library records alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from archiver.log import configure_logging, get_logger, register_secret


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    configure_logging(level="info", format="json", stream=out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_standard_library_records_are_json_lines_like_the_events(stream: io.StringIO) -> None:
    get_logger("archiver.test").info("pass_finished", archived=3)
    logging.getLogger("apscheduler.scheduler").warning(
        "Execution of job %s skipped: maximum number of running instances reached", "pass"
    )
    event, record = lines(stream)
    assert event["event"] == "pass_finished" and event["archived"] == 3
    assert record["level"] == "warning" and record["logger"] == "apscheduler.scheduler"
    assert record["event"] == (
        "Execution of job pass skipped: maximum number of running instances reached"
    )
    assert {"timestamp", "level"} <= event.keys() & record.keys()


def test_a_traceback_from_the_standard_library_is_one_json_line(stream: io.StringIO) -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("botocore").exception("request failed")
    (record,) = lines(stream)
    assert record["event"] == "request failed"
    assert "ValueError: broken" in str(record["exception"])


def test_secrets_are_redacted_from_standard_library_records(stream: io.StringIO) -> None:
    register_secret("s3cr3t-token-value")
    logging.getLogger("urllib3").warning("GET /?token=%s", "s3cr3t-token-value")
    (record,) = lines(stream)
    assert "s3cr3t" not in json.dumps(record) and "***" in str(record["event"])


def test_the_libraries_info_chatter_is_left_out(stream: io.StringIO) -> None:
    logging.getLogger("apscheduler.executors.default").info('Running job "pass"')
    logging.getLogger("botocore.credentials").info("Found credentials in environment variables.")
    get_logger("archiver.x").info("kept")
    assert [record["event"] for record in lines(stream)] == ["kept"]
