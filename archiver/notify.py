"""systemd's service notifications (``sd_notify(3)``): one datagram per message to the
socket named by ``$NOTIFY_SOCKET``, so a ``Type=notify`` unit knows when the daemon is ready,
what it is doing, and that its event loop still turns.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing. A failure to send is never
the daemon's failure: the message is dropped.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

# systemd reads one line of STATUS; longer is cut rather than refused.
MAX_STATUS = 200


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        path = environ.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace: a leading NUL byte.
        self._address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog_seconds = _watchdog_seconds(environ)

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={_one_line(status)}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self, status: str) -> None:
        self._send(f"STOPPING=1\nSTATUS={_one_line(status)}")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as out:
                out.sendto(message.encode(), self._address)
        except OSError:
            pass  # systemd gone or the socket full: nothing to do about it here


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """The watchdog period systemd asked for, or None (not asked, or meant for another
    process: ``$WATCHDOG_PID``)."""
    pid = environ.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_STATUS]
