"""Secret scan: every byte a test saw must be free of the credentials it handed out."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from tests.support.cli import DEVREV_TOKEN, TOKEN, VENDOR_TOKENS

VENDOR_SECRETS = (TOKEN, DEVREV_TOKEN, *VENDOR_TOKENS.values())


class SecretScan:
    """Collects output, files and databases; ``assert_clean`` fails on any secret in them."""

    def __init__(self, *extra_secrets: str) -> None:
        self.secrets = tuple(secret for secret in (*VENDOR_SECRETS, *extra_secrets) if secret)
        self._blobs: list[tuple[str, bytes]] = []

    def add(self, label: str, data: str | bytes) -> None:
        self._blobs.append((label, data.encode() if isinstance(data, str) else data))

    def add_result(self, label: str, result: subprocess.CompletedProcess[str]) -> None:
        self.add(f"{label} stdout", result.stdout or "")
        self.add(f"{label} stderr", result.stderr or "")

    def add_tree(self, root: Path) -> None:
        """Every file under ``root`` (evidence, logs, state database and its WAL), raw."""
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                self.add(str(path), path.read_bytes())
            if path.suffix == ".db" and path.is_file():
                self.add(f"{path} dump", _dump(path))

    def assert_clean(self) -> None:
        assert self._blobs, "nothing was collected"
        leaks = [
            f"{label}: {secret[:4]}..."
            for label, data in self._blobs
            for secret in self.secrets
            if secret.encode() in data
        ]
        assert not leaks, f"secrets found in {leaks}"


def _dump(path: Path) -> str:
    connection = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
    try:
        return "\n".join(connection.iterdump())
    except sqlite3.Error as exc:
        return f"(no dump: {exc})"
    finally:
        connection.close()
