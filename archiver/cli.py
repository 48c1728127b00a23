"""Command line: parse, load config, open the app, run one coroutine, map to an exit code.

Exit codes: 0 everything archived, 1 a session or a source pass failed, 2 the
configuration or start-up is wrong (bad config, state in use, store unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from archiver import __version__
from archiver.app import App, open_app
from archiver.config import Config, load_config
from archiver.daemon import run_daemon, run_once_until_signal
from archiver.engine import PassReport
from archiver.errors import ArchiverError, ConfigError
from archiver.log import configure_logging, redact

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archiver",
        description="Archive test-session evidence (videos, logs, captures, reports) "
        "with a SHA-256 manifest per session.",
    )
    parser.add_argument("--version", action="version", version=f"archiver {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help="TOML configuration (default: $ARCHIVER_CONFIG)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon (or one pass with --once)")
    run.add_argument("--once", action="store_true", help="one pass over every source, then exit")

    rearchive = commands.add_parser("rearchive", help="archive given sessions again now")
    rearchive.add_argument("--source", required=True, help="source name, e.g. perfecto")
    rearchive.add_argument(
        "--id", dest="ids", action="append", required=True, metavar="ID", help="session id"
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
        config = load_config(args.config)
        configure_logging(level=config.log.level, format=config.log.format)
        if args.command == "run" and not args.once:
            return asyncio.run(_with_app(config, _daemon))
        if args.command == "run":
            return asyncio.run(_with_app(config, _once))
        return asyncio.run(_with_app(config, _rearchive_command(args.source, args.ids)))
    except ConfigError as exc:
        print(f"archiver: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ArchiverError as exc:
        print(f"archiver: cannot start: {redact(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_FAILED


AppCommand = Callable[[App], Awaitable[int]]


async def _with_app(config: Config, command: AppCommand) -> int:
    async with open_app(config) as app:
        return await command(app)


async def _daemon(app: App) -> int:
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


def _exit_code(report: PassReport) -> int:
    return EXIT_OK if report.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
