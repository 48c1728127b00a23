"""Running the installed ``archiver`` command in a subprocess, and writing its config."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARCHIVER = Path(sys.executable).with_name("archiver")
TOKEN = "perfecto-e2e-token-5f1c9a"
DEVREV_TOKEN = "devrev-e2e-token-8d2e7b"
VENDOR_TOKENS = {
    "TESTOBJECT_API_KEY": "testobject-e2e-key-41c0",
    "TESTMO_TOKEN": "testmo-e2e-token-93ab",
    "EKRAN_TOKEN": "ekran-e2e-token-7e55",
    "SAUCE_ACCESS_KEY": "sauce-e2e-access-key-2d9f",
    "BROWSERSTACK_ACCESS_KEY": "browserstack-e2e-key-6a1f",
}
# Device Farm's credentials are AWS's, from boto3's chain. Not in VENDOR_TOKENS: the S3
# store's tests set the same AWS_* variables for their own server, so only the Device Farm
# tests pass these (archiver_env(**DEVICEFARM_AWS)).
DEVICEFARM_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIADEVICEFARME2E001",
    "AWS_SECRET_ACCESS_KEY": "devicefarm-e2e-secret-Jq4v",
}


def archiver_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARCHIVER_")}
    env.update({"PERFECTO_TOKEN": TOKEN, "DEVREV_TOKEN": DEVREV_TOKEN, **VENDOR_TOKENS, **extra})
    return env


def run_archiver(
    *args: str, config: Path | None = None, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    command = [str(ARCHIVER)]
    if config is not None:
        command += ["--config", str(config)]
    command += list(args)
    return subprocess.run(
        command,
        env=env or archiver_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Deployment:
    """One config file with its evidence folder and state database."""

    root: Path
    config: Path

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"

    def manifests(self, source: str = "perfecto") -> dict[str, dict[str, Any]]:
        found = {}
        for path in sorted((self.evidence / source).glob("*/manifest.json")):
            found[path.parent.name] = json.loads(path.read_text())
        return found

    def verify_manifest(self, manifest: dict[str, Any]) -> None:
        """Every listed object exists with the listed size and SHA-256."""
        for entry in manifest["artifacts"]:
            data = (self.evidence / entry["key"]).read_bytes()
            assert len(data) == entry["size"], entry["key"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["key"]


def toml_table(name: str, values: dict[str, Any]) -> str:
    return f"[{name}]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in values.items()
    )


def write_config(
    root: Path,
    *,
    perfecto_url: str | None,
    store: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
    http: dict[str, Any] | None = None,
    perfecto: dict[str, Any] | None = None,
    devrev_url: str | None = None,
    devrev: dict[str, Any] | None = None,
    sources: dict[str, dict[str, Any]] | None = None,
    state: dict[str, Any] | None = None,
    extra: str = "",
) -> Deployment:
    """A config for one test: file store and SQLite state under ``root`` (unless ``store``
    and ``state`` say otherwise), quick retries."""
    root.mkdir(parents=True, exist_ok=True)
    tables = [
        toml_table("store", store or {"url": f"file://{root}/evidence"}),
        toml_table("state", state or {"url": f"sqlite:///{root}/state.db"}),
        toml_table(
            "engine",
            {"not_ready_delay_seconds": 0.05, "shutdown_grace_seconds": 5, **(engine or {})},
        ),
        toml_table("http", {"backoff_initial": 0.05, "backoff_max": 0.2, **(http or {})}),
    ]
    if perfecto_url:
        tables.append(
            toml_table(
                "sources.perfecto",
                {
                    "base_url": perfecto_url,
                    "token_env": "PERFECTO_TOKEN",
                    "backfill_days": 3,
                    **(perfecto or {}),
                },
            )
        )
    if devrev_url:
        tables.append(
            toml_table(
                "sources.devrev",
                {
                    "base_url": devrev_url,
                    "token_env": "DEVREV_TOKEN",
                    "version_key": "com.example.shop",
                    "type": "mobile",
                    "backfill_days": 3,
                    **(devrev or {}),
                },
            )
        )
    for name, values in (sources or {}).items():
        tables.append(toml_table(f"sources.{name}", {"backfill_days": 30, **values}))
    config = root / "archiver.toml"
    config.write_text("\n".join(tables) + extra)
    return Deployment(root=root, config=config)
