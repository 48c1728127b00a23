"""End to end: the command line's options and exit codes, through the installed command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from archiver import __version__
from archiver.demo import NO_SIMULATORS
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


# The archiver's own entry point, in a Python where the simulators cannot be imported: as
# after `pip install .` alone (they are a distribution of their own, in simulators/).
WITHOUT_SIMULATORS = """
import sys
sys.modules["archiver_sim"] = None  # import archiver_sim raises ModuleNotFoundError
from archiver.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_demo_without_the_simulators_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_SIMULATORS, "demo", "--dir", str(folder)],
        env=archiver_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EX_CONFIG, result.stderr
    assert result.stderr.splitlines() == [NO_SIMULATORS]
    assert "the demo needs the vendor simulators: pip install ./simulators" in NO_SIMULATORS
    assert result.stdout == ""
    assert not folder.exists()


def test_no_archiver_module_imports_the_simulators() -> None:
    script = (
        'import importlib, pkgutil, sys\nsys.modules["archiver_sim"] = None\nimport archiver\n'
        "for module in pkgutil.walk_packages(archiver.__path__, 'archiver.'):\n"
        "    importlib.import_module(module.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
