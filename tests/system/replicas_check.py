"""The checks of ``replicas_compose.sh`` that need more than a shell: standard library only,
so that it runs both with the host's ``python3`` and inside the archiver's image.

    python replicas_check.py inventory EVIDENCE_DIR > inventory.json   # in a replica
    python replicas_check.py check EXPECTED INVENTORY REPLICA_LOG...   # on the host

``inventory`` lists the sessions with a manifest and every session the ledger records (one
item per record). ``check`` compares them with the sessions the simulators hold and with
the ``session_archived`` events in the replicas' logs: every session must have exactly one
manifest, one ledger record and one event among all the replicas. It prints one line of
counts and exits 0, or names what is wrong and exits 1.

``verify`` reads the output of ``archiver verify --json``. A session taken over from a
replica killed in its middle is archived under a later claim generation
(``<session>/attempts/NNNN/``, archiver/claims.py), and what the killed replica had
written in its own generation stays behind, reported as ``abandoned`` (docs/architecture.md,
"Claims"), not as a problem. Any problem fails, and so does an abandoned object that is not
of an earlier generation than the one that archived its session.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Session = tuple[str, str]
LEDGER_FOLDER = "ledger"
ATTEMPTS = "attempts"


def generation(session_folder: str, key: str) -> int:
    """The claim generation an object of the session in ``session_folder`` belongs to."""
    parts = key.removeprefix(f"{session_folder}/").split("/")
    return int(parts[1]) if len(parts) > 2 and parts[0] == ATTEMPTS else 0


def inventory(evidence: Path) -> dict[str, Any]:
    manifests, generations = [], {}
    for path in sorted(evidence.glob("*/*/manifest.json")):
        source, session = path.parent.parent.name, path.parent.name
        if source == LEDGER_FOLDER:
            continue
        manifests.append([source, session])
        folder = f"{source}/{session}"
        listed = json.loads(path.read_bytes())["artifacts"]
        generations[folder] = max((generation(folder, item["key"]) for item in listed), default=0)
    records = [
        [record["source"], record["session_id"]]
        for path in sorted((evidence / LEDGER_FOLDER).glob("*.json"))
        for record in json.loads(path.read_bytes())["manifests"]
    ]
    return {"manifests": manifests, "ledger_records": records, "generations": generations}


ARCHIVED = "session_archived"
TAKEN_OVER = "session_archived_by_another_writer"


def events(lines: Iterable[str], name: str) -> Counter[Session]:
    """How often each session has the event ``name`` in a replica's log lines."""
    found: Counter[Session] = Counter()
    for line in lines:
        if f'"{name}"' not in line:
            continue
        event = json.loads(line)
        if event.get("event") == name:
            found[(event["source"], event["session_id"])] += 1
    return found


def problems(
    expected: set[Session], name: str, found: Counter[Session], *, required: bool = True
) -> list[str]:
    wrong = []
    missing = expected - set(found)
    if missing and required:
        wrong.append(f"{len(missing)} sessions have no {name}, e.g. {sorted(missing)[:3]}")
    unexpected = set(found) - expected
    if unexpected:
        wrong.append(f"{len(unexpected)} unknown sessions have a {name}: {sorted(unexpected)[:3]}")
    twice = sorted(session for session, count in found.items() if count > 1)
    if twice:
        wrong.append(f"{len(twice)} sessions have more than one {name}, e.g. {twice[:3]}")
    return wrong


def check(expected_file: Path, inventory_file: Path, unlogged_max: int, logs: list[Path]) -> int:
    by_vendor: dict[str, list[str]] = json.loads(expected_file.read_text())
    expected = {(vendor, session) for vendor, ids in by_vendor.items() for session in ids}
    found = json.loads(inventory_file.read_text())
    manifests = Counter((source, session) for source, session in found["manifests"])
    records = Counter((source, session) for source, session in found["ledger_records"])
    lines = {log.stem: log.read_text().splitlines() for log in logs}
    per_replica = {name: events(log, ARCHIVED) for name, log in lines.items()}
    archived: Counter[Session] = sum(per_replica.values(), Counter())
    taken_over: Counter[Session] = sum(
        (events(log, TAKEN_OVER) for log in lines.values()), Counter()
    )
    unlogged = expected - set(archived) - set(taken_over)
    wrong = [
        *problems(expected, "manifest", manifests),
        *problems(expected, "ledger record", records),
        *problems(expected, f"{ARCHIVED} event", archived, required=False),
    ]
    if len(unlogged) > unlogged_max:
        wrong.append(
            f"{len(unlogged)} sessions have no event (more than {unlogged_max} in flight "
            f"in the killed replicas), e.g. {sorted(unlogged)[:3]}"
        )
    for message in wrong:
        print(f"replicas_check: {message}", file=sys.stderr)
    shares = ", ".join(f"{name} {sum(counted.values())}" for name, counted in per_replica.items())
    print(
        f"{len(expected)} sessions: {sum(manifests.values())} manifests, "
        f"{sum(records.values())} ledger records, {sum(archived.values())} {ARCHIVED} "
        f"events ({shares}), {len(set(taken_over) - set(archived))} taken over from a killed "
        f"replica, {len(unlogged)} stored by a killed replica with no event"
    )
    return 1 if wrong else 0


def check_verify(inventory_file: Path, verify_file: Path) -> int:
    generations: dict[str, int] = json.loads(inventory_file.read_text())["generations"]
    report = json.loads(verify_file.read_text())
    left_behind, wrong = Counter[str](), list(report["problems"])
    for key in report.get("abandoned", []):
        folder = "/".join(key.split("/")[:2])
        won = generations.get(folder)
        if won is not None and generation(folder, key) < won:
            left_behind[folder] += 1
        else:
            wrong.append({"kind": "abandoned", "key": key, "detail": "not a superseded attempt"})
    for problem in wrong:
        print(f"replicas_check: archiver verify: {problem}", file=sys.stderr)
    print(
        f"archiver verify: {report['sessions']} sessions, {report['manifests']} manifests, "
        f"{len(report['problems'])} problems, {sum(left_behind.values())} objects abandoned "
        f"by killed replicas in {len(left_behind)} sessions taken over"
    )
    return 1 if wrong else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "inventory":
        json.dump(inventory(Path(argv[1])), sys.stdout)
        return 0
    if len(argv) >= 4 and argv[0] == "check":
        logs = [Path(log) for log in argv[4:]]
        return check(Path(argv[1]), Path(argv[2]), int(argv[3]), logs)
    if len(argv) == 3 and argv[0] == "verify":
        return check_verify(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
