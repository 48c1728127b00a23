"""What the archiver is measured against, each run in a process of its own.

``python -m bench.baselines parallel URLS OUT --concurrency N [--fsync]``
    a plain parallel streaming downloader: aiohttp, N downloads at a time, each body
    written to a file as it arrives; no hashing, no manifest, no state, and no fsync
    unless asked (then each file is made durable, as the archiver does).
``python -m bench.baselines sequential API_URL OUT --token T``
    what the vendor's sample scripts do: list the executions, then for each one ask for
    its commands report and download every file, one request at a time (urllib).
``python -m bench.baselines upload FOLDER --endpoint URL --bucket B --concurrency N``
    boto3's own ``upload_file`` of every file in FOLDER, N files at a time, with the
    archiver's transfer settings.

Each prints one JSON line: ``{"seconds": ..., "files": ..., "bytes": ...}``, timed from the
first request to the last byte written (interpreter start-up is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiofiles
import aiohttp
import boto3
from boto3.s3.transfer import TransferConfig

from archiver.config import StoreSettings

CHUNK = 1024 * 1024


async def parallel(
    urls: list[str], out: Path, concurrency: int, *, fsync: bool = False
) -> tuple[int, int]:
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)

    async def fetch(session: aiohttp.ClientSession, number: int, url: str) -> int:
        async with slots, session.get(url) as response:
            response.raise_for_status()
            size = 0
            async with aiofiles.open(out / f"{number:07d}", "wb") as target:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await target.write(chunk)
                    size += len(chunk)
                if fsync:
                    await target.flush()
                    await asyncio.to_thread(os.fsync, target.fileno())
            return size

    session = aiohttp.ClientSession(connector=connector, timeout=timeout)
    async with session, asyncio.TaskGroup() as group:
        tasks = [group.create_task(fetch(session, n, url)) for n, url in enumerate(urls)]
    return len(urls), sum(task.result() for task in tasks)


def sequential(api_url: str, out: Path, token: str) -> tuple[int, int]:
    headers = {"PERFECTO-AUTHORIZATION": token}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get_json(path: str, **params: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 (the simulator's http URL)
            f"{api_url}{path}?{urllib.parse.urlencode(params)}", headers=headers
        )
        with opener.open(request) as response:
            return json.load(response)

    def download(url: str, number: int) -> int:
        own = url.startswith(api_url)
        request = urllib.request.Request(url, headers=headers if own else {})  # noqa: S310
        with opener.open(request) as response, (out / f"{number:07d}").open("wb") as target:
            shutil.copyfileobj(response, target, CHUNK)
            return target.tell()

    files = size = 0
    executions = "/export/api/v1/test-executions"
    now = int(time.time() * 1000)
    page = 1
    while True:
        listing = get_json(
            executions,
            **{"startExecutionTime[0]": str(now - 86_400_000), "endExecutionTime[0]": str(now)},
            _page=str(page),
        )
        for execution in listing["resources"]:
            commands = get_json(f"{executions}/{execution['id']}/commands")
            urls = [video["downloadUrl"] for video in execution["videos"]]
            urls += [artifact["path"] for artifact in execution["artifacts"]]
            urls += [
                shot
                for resource in commands["resources"]
                for command in resource["commands"]
                for shot in command.get("screenshots", [])
            ]
            for url in urls:
                size += download(url, files)
                files += 1
        if not listing["metadata"]["truncated"]:
            return files, size
        page += 1


def upload(folder: Path, endpoint: str, bucket: str, concurrency: int) -> tuple[int, int]:
    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    defaults = StoreSettings(url="s3://unused")
    transfer = TransferConfig(
        multipart_threshold=defaults.multipart_threshold,
        multipart_chunksize=defaults.multipart_chunksize,
        max_concurrency=defaults.transfer_concurrency,
    )
    paths = sorted(path for path in folder.iterdir() if path.is_file())
    with ThreadPoolExecutor(concurrency) as pool:
        list(
            pool.map(
                lambda path: client.upload_file(
                    str(path), bucket, f"baseline/{path.name}", Config=transfer
                ),
                paths,
            )
        )
    return len(paths), sum(path.stat().st_size for path in paths)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    modes = parser.add_subparsers(dest="mode", required=True)
    one = modes.add_parser("parallel")
    one.add_argument("urls", type=Path)
    one.add_argument("out", type=Path)
    one.add_argument("--concurrency", type=int, default=8)
    one.add_argument("--fsync", action="store_true", help="fsync every file, as the archiver")
    two = modes.add_parser("sequential")
    two.add_argument("api_url")
    two.add_argument("out", type=Path)
    two.add_argument("--token", required=True)
    three = modes.add_parser("upload")
    three.add_argument("folder", type=Path)
    three.add_argument("--endpoint", required=True)
    three.add_argument("--bucket", required=True)
    three.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.mode == "parallel":
        urls = args.urls.read_text().split()
        args.out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        files, size = asyncio.run(parallel(urls, args.out, args.concurrency, fsync=args.fsync))
    elif args.mode == "sequential":
        args.out.mkdir(parents=True, exist_ok=True)
        files, size = sequential(args.api_url, args.out, args.token)
    else:
        files, size = upload(args.folder, args.endpoint, args.bucket, args.concurrency)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "files": files, "bytes": size}))


if __name__ == "__main__":
    main()
