"""End to end: the command line's options and exit codes, through the installed command."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver import __version__
from tests.support.cli import archiver_env, run_archiver

EX_CONFIG = 78


def minimal_config(tmp_path: Path, store_url: str | None = None) -> Path:
    path = tmp_path / "archiver.toml"
    path.write_text(
        f'[store]\nurl = "{store_url or f"file://{tmp_path}/evidence"}"\n'
        f'[state]\nurl = "sqlite:///{tmp_path}/state.db"\n'
    )
    return path


@pytest.mark.parametrize("command", [["verify"], ["show", "--source", "x", "--id", "y"]])
@pytest.mark.parametrize(
    ("store_url", "complaint"), [("file://evidence/x", "absolute path"), ("s3://", "bucket")]
)
def test_a_bad_store_url_is_one_line_naming_the_key_and_file(
    tmp_path: Path, command: list[str], store_url: str, complaint: str
) -> None:
    path = minimal_config(tmp_path, store_url)
    result = run_archiver(*command, config=path)
    assert result.returncode == EX_CONFIG, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "'store.url'" in lines[0] and str(path) in lines[0] and complaint in lines[0]


def test_config_after_the_command(tmp_path: Path) -> None:
    path = minimal_config(tmp_path)
    result = run_archiver("run", "--once", "--config", str(path))
    assert result.returncode == 0, result.stderr
    result = run_archiver("verify", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == EX_CONFIG and "missing.toml" in result.stderr


def test_the_command_line_wins_over_the_environment(tmp_path: Path) -> None:
    env = archiver_env(ARCHIVER_CONFIG=str(tmp_path / "missing.toml"))
    result = run_archiver("run", "--once", "--config", str(minimal_config(tmp_path)), env=env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag: str) -> None:
    result = run_archiver(flag)
    assert result.returncode == 0 and result.stdout.strip() == f"archiver {__version__}"
