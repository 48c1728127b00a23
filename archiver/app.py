"""Composition root: opens the state, the store, the HTTP session and the sources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from archiver import __version__
from archiver.config import Config, StoreSettings
from archiver.engine import Engine
from archiver.log import get_logger, register_secret
from archiver.sources import Source, open_sources
from archiver.state import State, open_state
from archiver.store import Store, open_store
from archiver.urlpolicy import GuardedResolver

log = get_logger(__name__)

USER_AGENT = f"archiver/{__version__}"


@dataclass(frozen=True, slots=True)
class App:
    config: Config
    engine: Engine
    store: Store
    state: State
    sources: dict[str, Source]


@asynccontextmanager
async def open_app(config: Config) -> AsyncIterator[App]:
    for source in config.sources.values():
        register_secret(source.token.reveal())
    async with AsyncExitStack() as stack:
        state = await open_state(config.state.url)
        stack.push_async_callback(state.close)
        store = await stack.enter_async_context(open_checked_store(config.store, writes=True))
        removed = await store.cleanup_incomplete(
            older_than=config.engine.cleanup_incomplete_after_seconds
        )
        if removed:
            log.info("incomplete_writes_removed", count=removed, store=store.description)
        connector = aiohttp.TCPConnector(
            limit=config.engine.download_concurrency * 2 + 8 * max(1, len(config.sources)),
            limit_per_host=0,
            ttl_dns_cache=300,
            resolver=GuardedResolver(),
        )
        http = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=None),
                raise_for_status=False,
                # A bigger read buffer hands the engine bigger pieces of a body: fewer
                # copies and fewer hops to the writer threads per MiB.
                read_bufsize=config.http.chunk_size,
            )
        )
        sources = open_sources(http, config.sources, config.http)
        engine = Engine(sources=sources, store=store, state=state, settings=config.engine)
        yield App(config=config, engine=engine, store=store, state=state, sources=sources)


@asynccontextmanager
async def open_checked_store(
    settings: StoreSettings, *, writes: bool = False
) -> AsyncIterator[Store]:
    """The configured store, after its start-up check (bucket, versioning, Object Lock; with
    ``writes``, also what an S3 server does with conditional and encrypted writes)."""
    s3_options: dict[str, Any] = {}
    if urlsplit(settings.url).scheme == "s3":
        from archiver.store.s3promises import S3Protection

        s3_options["protection"] = S3Protection(
            object_lock_mode=settings.object_lock_mode,
            object_lock_days=settings.object_lock_days,
            legal_hold=settings.legal_hold,
            sse=settings.sse,
            sse_kms_key_id=settings.sse_kms_key_id,
            storage_class=settings.storage_class,
        )
        s3_options["single_writer"] = settings.single_writer
        s3_options["read_only"] = not writes
    store = open_store(
        settings.url,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        multipart_threshold=settings.multipart_threshold,
        multipart_chunksize=settings.multipart_chunksize,
        max_concurrency=settings.transfer_concurrency,
        spool_dir=settings.spool_dir,
        **s3_options,
    )
    try:
        await store.check()
        yield store
    finally:
        await store.close()
