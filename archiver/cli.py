"""Command line: parse, load config, open the app, run one coroutine, map to an exit code.

Exit codes (as sysexits where one fits, so that supervisors can tell them apart):

* 0 everything archived (``verify``: everything checks; ``show``: found; ``status``:
  nothing needs attention);
* 1 a session or a source pass failed (``verify``: a problem was found; ``show``: no such
  session; ``status``: something needs attention, or the state cannot be read), or the
  store broke while running;
* 2 the command line is wrong (argparse's usage error);
* 75 (EX_TEMPFAIL) cannot start now: state in use, store unreachable; starting again
  later may work, so a supervisor should restart;
* 78 (EX_CONFIG) the configuration is wrong; nothing changes until someone edits it, so
  the systemd unit does not restart on it (``RestartPreventExitStatus=78``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from archiver import __version__, probe, status
from archiver.app import App, open_app, open_checked_store
from archiver.bagtarget import BagTarget, FolderTarget, ZipTarget
from archiver.bagverify import check_bag_against_store, check_bag_with_ledger
from archiver.config import CONFIG_ENV, Config, load_config
from archiver.daemon import run_daemon, run_once_until_signal
from archiver.endpoints import serving
from archiver.engine import PassReport
from archiver.errors import ArchiverError, ConfigError, ExportError, StoreBroken, StoreError
from archiver.export import ExportSelection, export_bag
from archiver.log import configure_logging, redact
from archiver.progress import TerminalProgress, human_bytes
from archiver.show import render, summarize
from archiver.state import open_state
from archiver.verify import Selection, Verifier, VerifyReport

CONFIG_HELP = "TOML configuration (default: $ARCHIVER_CONFIG)"
EXIT_OK, EXIT_FAILED, EXIT_TEMPFAIL, EXIT_CONFIG = 0, 1, 75, 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archiver",
        description="Archive test-session evidence (videos, logs, captures, reports) "
        "with a SHA-256 manifest per session.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"archiver {__version__}")
    parser.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    # The same option after the command; SUPPRESS keeps an absent one from hiding the other.
    with_config = argparse.ArgumentParser(add_help=False)
    with_config.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", parents=[with_config], help="run the daemon (or one pass with --once)"
    )
    run.add_argument("--once", action="store_true", help="one pass over every source, then exit")

    rearchive = commands.add_parser(
        "rearchive", parents=[with_config], help="archive given sessions again now"
    )
    rearchive.add_argument("--source", required=True, help="source name, e.g. perfecto")
    rearchive.add_argument(
        "--id", dest="ids", action="append", required=True, metavar="ID", help="session id"
    )

    verify = commands.add_parser(
        "verify",
        parents=[with_config],
        help="check every manifest, every object it lists and the ledger's hash chain",
    )
    verify.add_argument("--source", help="only this source's sessions")
    verify.add_argument(
        "--id", dest="ids", action="append", default=[], metavar="ID", help="session id"
    )
    verify.add_argument(
        "--since",
        type=_date,
        metavar="DATE",
        help="only sessions archived since DATE (2026-11-01 or RFC 3339, UTC if no offset)",
    )
    verify.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    verify.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="objects read at once (8)"
    )
    verify.add_argument(
        "--anchor",
        type=_anchor,
        metavar="SEQ:SHA256",
        help="a ledger head noted from an earlier run: entry SEQ must still have this SHA-256",
    )
    verify.add_argument(
        "--bag",
        type=Path,
        metavar="DIR",
        help="check an exported bag instead (with a config, also against the store's ledger)",
    )

    export = commands.add_parser(
        "export",
        parents=[with_config],
        help="write archived sessions as a BagIt bag with a readable index.html, for auditors",
    )
    export.add_argument("--source", help="source name, e.g. perfecto (needed with --id)")
    export.add_argument(
        "--id", dest="ids", action="append", default=[], metavar="ID", help="session id"
    )
    export.add_argument(
        "--since",
        type=_date,
        metavar="DATE",
        help="sessions archived since DATE (UTC if no offset)",
    )
    export.add_argument("--until", type=_date, metavar="DATE", help="...and before DATE")
    where = export.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, metavar="DIR", help="the bag, a new folder")
    where.add_argument(
        "--zip", type=Path, metavar="FILE", help="the bag, a new zip file ('-': standard output)"
    )

    show = commands.add_parser("show", parents=[with_config], help="summarize one archived session")
    show.add_argument("--source", required=True, help="source name, e.g. perfecto")
    show.add_argument("--id", required=True, help="session id")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")

    status = commands.add_parser(
        "status",
        parents=[with_config],
        help="how each source stands (reads the state beside a running daemon; no tokens)",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of text")

    healthcheck = commands.add_parser(
        "healthcheck",
        parents=[with_config],
        help="ask the running daemon's /healthz (or /readyz); for Docker's HEALTHCHECK",
    )
    healthcheck.add_argument(
        "--ready", action="store_true", help="ask /readyz: started up, store answers, passes ok"
    )

    state = commands.add_parser("state", help="the state database: migrate it, copy it")
    state_commands = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    state_commands.add_parser(
        "migrate",
        parents=[with_config],
        help="create or migrate the configured state's schema now (the daemon does it too)",
    )
    copy = state_commands.add_parser(
        "copy",
        help="copy a SQLite state into PostgreSQL, archiving nothing again (safe to re-run)",
    )
    copy.add_argument("--from", dest="from_url", required=True, metavar="SQLITE_URL")
    copy.add_argument("--to", dest="to_url", required=True, metavar="POSTGRESQL_URL")
    copy.add_argument(
        "--password-env",
        metavar="NAME",
        help="environment variable holding the database password (default: libpq's own, "
        "PGPASSWORD or ~/.pgpass)",
    )
    copy.add_argument(
        "--replica",
        help="the replica that goes on writing as the SQLite installation did (default: "
        "this host's name)",
    )

    demo = commands.add_parser(
        "demo", help="archive from the built-in vendor simulator into a local folder"
    )
    demo.add_argument(
        "--dir",
        type=Path,
        default=Path("archiver-demo"),
        help="folder for the demo's evidence and state (default: ./archiver-demo)",
    )
    demo.add_argument("--executions", type=int, default=24, help="simulated test executions")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from archiver.demo import run_demo

            configure_logging(level="warning")
            return asyncio.run(run_demo(args.dir, executions=args.executions))
        if args.command == "verify" and args.bag is not None:
            if args.source or args.ids or args.since or args.anchor:
                build_parser().error(
                    "verify --bag checks the bag's sessions; it takes no selection"
                )
            return asyncio.run(_verify_bag(args))
        if args.command == "export":
            _check_export_selection(args)
            config = load_config(args.config, with_sources=False)
            configure_logging(level=config.log.level, format=config.log.format)
            return asyncio.run(_export(config, args))
        if args.command in ("verify", "show"):
            if args.command == "verify" and args.ids and not args.source:
                build_parser().error("verify --id needs --source")
            config = load_config(args.config, with_sources=False)
            configure_logging(level=config.log.level, format=config.log.format)
            command = _verify if args.command == "verify" else _show
            return asyncio.run(command(config, args))
        if args.command == "state":
            return _state_command(args)
        if args.command == "healthcheck":
            return _healthcheck(load_config(args.config, read_tokens=False), args)
        if args.command == "status":
            config = load_config(args.config, read_tokens=False)
            configure_logging(level=config.log.level, format=config.log.format)
            return asyncio.run(_status(config, args))
        config = load_config(args.config)
        configure_logging(level=config.log.level, format=config.log.format)
        if args.command == "run" and not args.once:
            return asyncio.run(_with_app(config, _daemon, observed=True))
        if args.command == "run":
            return asyncio.run(_with_app(config, _once))
        return asyncio.run(_with_app(config, _rearchive_command(args.source, args.ids)))
    except ConfigError as exc:
        print(f"archiver: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreBroken as exc:
        print(f"archiver: stopped: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except ArchiverError as exc:
        print(f"archiver: cannot start: {redact(str(exc))}", file=sys.stderr)
        return EXIT_TEMPFAIL
    except KeyboardInterrupt:
        return EXIT_FAILED


AppCommand = Callable[[App], Awaitable[int]]


async def _with_app(config: Config, command: AppCommand, *, observed: bool = False) -> int:
    async with open_app(config, observed=observed) as app:
        return await command(app)


async def _daemon(app: App) -> int:
    async with AsyncExitStack() as stack:
        settings = app.config.metrics
        if settings is not None and app.metrics is not None and app.readiness is not None:
            await stack.enter_async_context(serving(settings, app.metrics, app.readiness))
        await run_daemon(
            app.engine,
            interval_seconds=app.config.engine.interval_seconds,
            grace_seconds=app.config.engine.shutdown_grace_seconds,
        )
    return EXIT_OK


async def _once(app: App) -> int:
    report = await run_once_until_signal(
        app.engine, grace_seconds=app.config.engine.shutdown_grace_seconds
    )
    return _exit_code(report)


def _rearchive_command(source: str, ids: list[str]) -> AppCommand:
    async def rearchive(app: App) -> int:
        if source not in app.sources:
            raise ConfigError(
                f"source {source!r} is not enabled (enabled: {', '.join(app.sources) or 'none'})",
                key=f"sources.{source}",
                path=app.config.path,
            )
        return _exit_code(await app.engine.rearchive(source, ids))

    return rearchive


async def _verify(config: Config, args: argparse.Namespace) -> int:
    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() and not args.json else None
    selection = Selection(
        source=args.source, session_ids=tuple(args.ids), since=args.since, anchor=args.anchor
    )
    async with open_checked_store(config.store) as store:
        try:
            report = await Verifier(
                store, concurrency=max(1, args.concurrency), progress=progress
            ).run(selection)
        finally:
            if progress:
                progress.close()
    if args.json:
        print(json.dumps({"store": store.description, **report.to_json()}, indent=2))
    else:
        print(_verify_summary(store.description, report))
    return EXIT_OK if report.ok else EXIT_FAILED


def _verify_summary(where: str, report: VerifyReport) -> str:
    head = report.ledger_head
    lines = [
        f"verified {where}: {report.sessions} sessions, {report.manifests} manifests, "
        f"{report.objects} objects ({human_bytes(report.bytes)}) in {report.seconds:.1f} s",
        f"ledger: {report.ledger_entries} entries"
        + (f", head {head[0]}:{head[1]}" if head else ""),
    ]
    lines += [f"{problem.kind}: {problem.key}: {problem.detail}" for problem in report.problems]
    if report.abandoned:
        lines.append(
            f"note: {len(report.abandoned)} object(s) left by writers whose claim on a session"
            " another writer's manifest superseded (not evidence; listed with --json)"
        )
    if report.ok:
        lines.append("OK: every manifest, every object and the ledger check")
    else:
        lines.append(f"FAILED: {len(report.problems)} problem(s)")
    return "\n".join(lines)


def _check_export_selection(args: argparse.Namespace) -> None:
    if args.ids and not args.source:
        build_parser().error("export --id needs --source")
    if args.ids and (args.since or args.until):
        build_parser().error("export takes --id or --since/--until, not both")
    if not args.ids and args.since is None:
        build_parser().error("export needs --source S --id ID, or --since DATE")


async def _export(config: Config, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    selection = ExportSelection(
        source=args.source, session_ids=tuple(args.ids), since=args.since, until=args.until
    )
    try:
        async with open_checked_store(config.store) as store:
            target: BagTarget
            if args.zip == Path("-"):
                target = ZipTarget.to_stream(sys.stdout.buffer, now=now)
            elif args.zip:
                target = ZipTarget(args.zip, now=now)
            else:
                target = FolderTarget(args.out)
            report = await export_bag(
                store,
                selection,
                target,
                now=now,
                organization=config.export.source_organization,
            )
    except (ExportError, StoreError) as exc:
        print(f"archiver: export: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    where = "standard output" if args.zip == Path("-") else report.destination
    print(
        f"exported {report.sessions} sessions, {report.files} files "
        f"({human_bytes(report.bytes)}) to {where}\n"
        f"ledger head {report.ledger_head}",
        file=sys.stderr if args.zip == Path("-") else sys.stdout,  # the zip may be on stdout
    )
    return EXIT_OK


async def _verify_bag(args: argparse.Namespace) -> int:
    check = await asyncio.to_thread(check_bag_with_ledger, args.bag)
    store_description: str | None = None
    if args.config or os.environ.get(CONFIG_ENV):
        config = load_config(args.config, with_sources=False)
        configure_logging(level=config.log.level, format=config.log.format)
        async with open_checked_store(config.store) as store:
            await check_bag_against_store(args.bag, check, store)
            store_description = store.description
    against = f", against {store_description}" if store_description else ""
    if args.json:
        report = {"bag": str(args.bag), "store": store_description, **check.to_json()}
        print(json.dumps(report, indent=2))
        return EXIT_OK if check.ok else EXIT_FAILED
    lines = [
        f"checked bag {args.bag}{against}: {check.files} payload files "
        f"({human_bytes(check.bytes)})",
        *check.problems,
        "OK: the bag is complete and unaltered"
        if check.ok
        else f"FAILED: {len(check.problems)} problem(s)",
    ]
    print("\n".join(lines))
    return EXIT_OK if check.ok else EXIT_FAILED


async def _show(config: Config, args: argparse.Namespace) -> int:
    async with open_checked_store(config.store) as store:
        summary = await summarize(store, args.source, args.id)
    if summary is None:
        print(
            f"archiver: no archived {args.source} session {args.id!r} in {store.description}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(json.dumps(summary.to_json(), indent=2) if args.json else render(summary))
    return EXIT_OK


async def _status(config: Config, args: argparse.Namespace) -> int:
    try:
        async with AsyncExitStack() as stack:
            state = await open_state(
                config.state.url,
                read_only=True,
                password=config.state.password.reveal() or None,
                replica=config.state.replica,
            )
            stack.push_async_callback(state.close)
            store = await stack.enter_async_context(open_checked_store(config.store))
            report = await status.gather(config, state, store, now=datetime.now(UTC))
    except ArchiverError as exc:
        print(f"archiver: status: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(report.to_json(), indent=2) if args.json else status.render(report))
    return EXIT_OK if report.healthy else EXIT_FAILED


def _state_command(args: argparse.Namespace) -> int:
    if args.state_command == "migrate":
        config = load_config(args.config, read_tokens=False)
        configure_logging(level=config.log.level, format=config.log.format)
        return asyncio.run(_migrate_state(config))
    from archiver.state.copy import copy_state  # psycopg only for this command

    configure_logging(level="warning")
    password = os.environ.get(args.password_env, "") if args.password_env else ""
    if args.password_env and not password:
        print(f"archiver: state copy: {args.password_env} is not set", file=sys.stderr)
        return EXIT_CONFIG
    try:
        copied = asyncio.run(
            copy_state(args.from_url, args.to_url, password=password or None, replica=args.replica)
        )
    except ArchiverError as exc:
        print(f"archiver: state copy: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    writer = (
        f"replica {copied.replica!r} writes to the store as the SQLite installation did"
        if copied.writer_adopted
        else f"replica {copied.replica!r} already had a writer id of its own; sessions the"
        " SQLite installation claimed and did not finish are taken over after"
        " claim_lease_minutes"
    )
    print(
        f"copied into {copied.target}: {copied.sessions} sessions, {copied.watermarks}"
        f" watermarks, {copied.passes} passes; {writer}"
    )
    return EXIT_OK


async def _migrate_state(config: Config) -> int:
    try:
        state = await open_state(
            config.state.url,
            password=config.state.password.reveal() or None,
            replica=config.state.replica,
        )
        await state.close()
    except ArchiverError as exc:
        print(f"archiver: state migrate: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    print(f"state {state.description}: schema is at this archiver's version")
    return EXIT_OK


def _healthcheck(config: Config, args: argparse.Namespace) -> int:
    try:
        answer = probe.ask(config.metrics, "/readyz" if args.ready else "/healthz")
    except probe.ProbeFailed as exc:
        print(f"archiver: healthcheck: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(answer)
    return EXIT_OK


def _date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError(f"expected SEQ:SHA256, got {text!r}")
    return int(seq), digest.lower()


def _exit_code(report: PassReport) -> int:
    return EXIT_OK if report.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
