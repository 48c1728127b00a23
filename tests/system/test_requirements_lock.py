"""requirements.lock: the pinned runtime dependencies the container image installs.

It is written by ``make lock`` (pip-compile with hashes, from pyproject.toml). These checks
need no network: every entry is pinned to one version with hashes, and every runtime
dependency in pyproject.toml is there at a version its range allows. The image build adds
``pip check``, which also holds the transitive pins to each package's own requirements.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def lock_entries() -> dict[str, tuple[Version, list[str]]]:
    """Each locked package by canonical name: its version and the options after it."""
    logical = LOCK.read_text().replace("\\\n", " ")
    entries: dict[str, tuple[Version, list[str]]] = {}
    for line in logical.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        match = PIN.match(words[0])
        assert match, f"requirements.lock: not a name==version pin: {line.strip()}"
        name = canonicalize_name(match["name"])
        assert name not in entries, f"requirements.lock pins {name} twice"
        entries[name] = (Version(match["version"]), words[1:])
    return entries


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_every_entry_is_pinned_with_hashes() -> None:
    entries = lock_entries()
    assert entries
    for name, (_, options) in entries.items():
        assert options, f"{name} has no --hash"
        bad = [option for option in options if not HASH.match(option)]
        assert not bad, f"{name}: unexpected options {bad}"


def test_runtime_dependencies_are_locked_within_their_ranges() -> None:
    entries = lock_entries()
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{name} is in pyproject.toml but not in requirements.lock"
        version, _ = entries[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside pyproject.toml's "
            f"{requirement.specifier}: run `make lock`"
        )


def test_nothing_for_tests_or_development_is_locked() -> None:
    entries = lock_entries()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(r.name) for r in runtime_requirements()}
    extras = {
        canonicalize_name(Requirement(text).name)
        for texts in project["optional-dependencies"].values()
        for text in texts
    }
    assert not (extras - runtime - {"archiver"}) & set(entries)
