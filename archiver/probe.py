"""``archiver healthcheck``: ask the running daemon's own endpoint, for supervisors that
run a command (Docker's ``HEALTHCHECK``, a Kubernetes exec probe).

The daemon's address comes from ``[metrics] listen``; a wildcard address (``0.0.0.0``,
``::``) is asked on loopback. Without ``listen`` the daemon serves nothing to ask, which
is an error here: a check that cannot check must not pass.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from archiver.config import MetricsSettings

TIMEOUT_SECONDS = 5.0
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapped away


class ProbeFailed(Exception):
    """The endpoint did not say healthy (or ready); the message says what it said."""


def ask(settings: MetricsSettings | None, path: str = "/healthz") -> str:
    """The endpoint's JSON status, or ProbeFailed."""
    if settings is None:
        raise ProbeFailed(
            "[metrics] listen is not set: the daemon serves no /healthz to ask "
            '(set it, e.g. listen = "0.0.0.0:9464" in a container)'
        )
    host = WILDCARDS.get(settings.host, settings.host)
    connection = http.client.HTTPConnection(host, settings.port, timeout=TIMEOUT_SECONDS)
    netloc = f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"
    where = f"http://{netloc}{path}"
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read(64 * 1024)
    except OSError as exc:
        raise ProbeFailed(f"{where}: no answer: {exc}") from exc
    finally:
        connection.close()
    answer = _json_object(body)
    status = str(answer.get("status", ""))
    if response.status != 200:
        failed = answer.get("failed")
        names = [str(name) for name in failed] if isinstance(failed, list) else []
        raise ProbeFailed(
            f"{where}: HTTP {response.status} {status}".rstrip()
            + (f" (failed: {', '.join(names)})" if names else "")
        )
    return status or "ok"


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; anything else (not JSON, a list) as an empty one."""
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
