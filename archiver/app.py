"""Composition root: opens the state, the store, the HTTP session and the sources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp

from archiver import __version__
from archiver.config import Config
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
        store = open_store(
            config.store.url,
            endpoint_url=config.store.endpoint_url,
            region=config.store.region,
            multipart_threshold=config.store.multipart_threshold,
            multipart_chunksize=config.store.multipart_chunksize,
            max_concurrency=config.store.transfer_concurrency,
            spool_dir=config.store.spool_dir,
        )
        stack.push_async_callback(store.close)
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
