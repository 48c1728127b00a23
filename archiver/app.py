"""Composition root: opens the state, the store, the HTTP session and the sources, and with
``observed``, the observers ``[metrics]`` asks for (served by :mod:`archiver.endpoints`)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from archiver import __version__
from archiver.config import Config, StoreSettings
from archiver.engine import Engine
from archiver.eventlog import EVENT_LOG
from archiver.health import Readiness
from archiver.ledger import entry_key
from archiver.log import get_logger, register_secret
from archiver.metrics import PrometheusObserver
from archiver.observe import Observer, fan_out
from archiver.sharing import Sharing, new_holder
from archiver.sources import Source, open_sources
from archiver.state import State, open_state
from archiver.state.shared import SharesWork
from archiver.store import Store, open_store
from archiver.store.observed import ObservedStore
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
    metrics: PrometheusObserver | None = None
    readiness: Readiness | None = None


@asynccontextmanager
async def open_app(config: Config, *, observed: bool = False) -> AsyncIterator[App]:
    """``observed``: metrics and readiness are kept, if ``[metrics]`` asks for them."""
    for source in config.sources.values():
        register_secret(source.token.reveal())
    metrics: PrometheusObserver | None = None
    readiness: Readiness | None = None
    observers: list[Observer] = [EVENT_LOG]
    if observed and config.metrics is not None:
        # Vendor labels are the vendors' names in lower case: the source names.
        metrics = PrometheusObserver(
            config.sources,
            vendors=config.sources,
            retention_days={name: s.retention_days for name, s in config.sources.items()},
        )
        readiness = Readiness(
            config.sources,
            interval_seconds=config.engine.interval_seconds,
            max_missed_passes=config.metrics.readiness_max_missed_passes,
        )
        observers += [metrics, readiness]
    observer = fan_out(observers)
    async with AsyncExitStack() as stack:
        state = await open_state(
            config.state.url,
            password=config.state.password.reveal() or None,
            replica=config.state.replica,
        )
        stack.push_async_callback(state.close)
        store: Store = await stack.enter_async_context(
            open_checked_store(config.store, writes=True)
        )
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
        if isinstance(state, SharesWork):  # a vendor's rate applies to all replicas together
            budget = state.request_budget()
            for opened in sources.values():
                opened.client.pacer.budget = budget
        if metrics is not None:  # only the metrics count store writes and vendor requests
            store = ObservedStore(store, observer)
            for opened in sources.values():
                opened.client.observer = observer
        engine = Engine(
            sources=sources,
            store=store,
            state=state,
            settings=config.engine,
            observer=observer,
            sharing=_sharing(config, state),
            evidence_page=config.store.evidence_page,
        )
        if metrics is not None:
            # The ledger's head as the store has it: read once, so that the metric is right
            # from the start and a store that cannot be read fails the start-up.
            head = await engine.ledger.next_seq() - 1
            if head >= 0:
                observer.ledger_appended(head)
        if readiness is not None:
            readiness.store_probe = lambda: store.exists(entry_key(0))
            readiness.started_up = True
        yield App(
            config=config,
            engine=engine,
            store=store,
            state=state,
            sources=sources,
            metrics=metrics,
            readiness=readiness,
        )


def _sharing(config: Config, state: State) -> Sharing | None:
    """How this replica shares the work with the others, if its state is shared."""
    if not isinstance(state, SharesWork):
        return None
    return Sharing(
        work=state.shared_work(),
        holder=new_holder(config.state.replica or socket.gethostname()),
        lease=timedelta(seconds=config.state.lease_seconds),
        put_off=timedelta(seconds=config.engine.interval_seconds),
    )


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
