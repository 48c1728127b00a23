"""VendorClient over real HTTP: where the token goes, retries, status mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from archiver.config import HttpSettings, Secret
from archiver.errors import (
    BadVendorResponse,
    IncompleteDownload,
    NotReady,
    UnreadableVendorResponse,
    UnsafeArtifactUrl,
    VendorError,
    VendorUnavailable,
)
from archiver.http import VendorClient, header
from archiver.pacing import retry_after_seconds

TOKEN = "tok-abcdef-123456"
FAST = HttpSettings(attempts=3, backoff_initial=0.01, backoff_max=0.05, read_timeout=2)


@dataclass
class Origins:
    api: TestServer
    other: TestServer
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    flaky_left: int = 2
    garbled_left: int = 2


@pytest.fixture
async def origins() -> AsyncIterator[Origins]:
    state = Origins(api=None, other=None)  # type: ignore[arg-type]

    async def record(request: web.Request) -> None:
        state.seen.append((request.host, request.path, request.headers.get("X-Token")))

    async def ok_json(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"ok": True})

    async def to_other(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound(str(state.other.make_url("/file.bin")))

    async def flaky(request: web.Request) -> web.Response:
        await record(request)
        if state.flaky_left > 0:
            state.flaky_left -= 1
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.json_response({"ok": "finally"})

    async def not_found(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"userMessage": "no such test"}, status=404)

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    async def garbled(request: web.Request) -> web.Response:
        if state.garbled_left > 0:
            state.garbled_left -= 1
            if state.garbled_left % 2:
                return web.Response(text="<html>Proxy error</html>", content_type="text/html")
            return web.Response(body=b'{"ok": tr', content_type="application/json")
        return web.json_response({"ok": "parsed"})

    async def not_ready(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def file(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"x" * 100_000, content_type="application/octet-stream")

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if request.query.get("chunked"):
            response.enable_chunked_encoding()
        else:
            response.content_length = 300 * 7001
        await response.prepare(request)
        for number in range(300):
            await response.write(bytes([number % 251]) * 7001)
        await response.write_eof()
        return response

    async def short_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"y" * 10)
        assert request.transport is not None
        request.transport.close()
        return response

    api = web.Application()
    api.router.add_get("/ok", ok_json)
    api.router.add_get("/redirect", to_other)
    api.router.add_get("/flaky", flaky)
    api.router.add_get("/missing", not_found)
    api.router.add_get("/html", html)
    api.router.add_get("/garbled", garbled)
    api.router.add_get("/pdf", not_ready)
    api.router.add_get("/file.bin", file)
    api.router.add_get("/short", short_body)
    api.router.add_get("/streamed", streamed)
    other = web.Application()
    other.router.add_get("/file.bin", file)
    other.router.add_get("/ok", ok_json)
    state.api = TestServer(api, host="127.0.0.1")
    state.other = TestServer(other, host="127.0.0.1")
    await state.api.start_server()
    await state.other.start_server()
    yield state
    await state.api.close()
    await state.other.close()


@pytest.fixture
async def client(origins: Origins) -> AsyncIterator[VendorClient]:
    async with aiohttp.ClientSession() as session:
        yield VendorClient(
            session,
            vendor="Perfecto",
            base_url=str(origins.api.make_url("")),
            auth_headers=header("X-Token", Secret(TOKEN)),
            settings=FAST,
        )


async def test_token_only_to_own_origin(client: VendorClient, origins: Origins) -> None:
    await client.get_json("/ok")
    await client.get_json(str(origins.other.make_url("/ok")))
    assert origins.seen[0][2] == TOKEN
    assert origins.seen[1][2] is None


async def test_redirect_off_origin_drops_token(client: VendorClient, origins: Origins) -> None:
    async with client.download(str(origins.api.make_url("/redirect"))) as download:
        body = b"".join([piece async for chunk in download.chunks() for piece in chunk])
    assert len(body) == 100_000
    assert [token for _, _, token in origins.seen] == [TOKEN, None]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_download_chunks_are_the_pieces_as_received(
    client: VendorClient, chunked: bool
) -> None:
    expected = b"".join(bytes([number % 251]) * 7001 for number in range(300))
    url = client.url("/streamed" + ("?chunked=1" if chunked else ""))
    async with client.download(url) as download:
        download.chunk_size = 64 * 1024
        chunks = [chunk async for chunk in download.chunks()]
    assert b"".join(piece for chunk in chunks for piece in chunk) == expected
    sizes = [sum(len(piece) for piece in chunk) for chunk in chunks]
    assert all(size >= download.chunk_size for size in sizes[:-1])  # only the last is short
    assert all(piece for chunk in chunks for piece in chunk)  # no empty pieces


async def test_retries_503_then_succeeds(client: VendorClient, origins: Origins) -> None:
    assert await client.get_json("/flaky") == {"ok": "finally"}
    assert origins.flaky_left == 0


async def test_gives_up_after_attempts(client: VendorClient, origins: Origins) -> None:
    origins.flaky_left = 10
    with pytest.raises(VendorUnavailable) as caught:
        await client.get_json("/flaky")
    assert caught.value.status == 503
    assert "Perfecto" in str(caught.value)
    assert origins.flaky_left == 10 - FAST.attempts


async def test_404_is_a_vendor_error_with_status_and_message(client: VendorClient) -> None:
    with pytest.raises(VendorError) as caught:
        await client.get_json("/missing")
    assert caught.value.status == 404
    assert "Perfecto answered HTTP 404" in str(caught.value)
    assert "no such test" in str(caught.value)


async def test_html_instead_of_json(client: VendorClient) -> None:
    with pytest.raises(BadVendorResponse, match="not JSON"):
        await client.get_json("/html")


async def test_html_page_or_cut_json_is_retried(client: VendorClient, origins: Origins) -> None:
    # A proxy's HTML page or a document cut short is passing trouble: asked again, it heals.
    assert await client.get_json("/garbled") == {"ok": "parsed"}
    assert origins.garbled_left == 0


async def test_lasting_html_is_transient_but_gives_up(client: VendorClient) -> None:
    with pytest.raises(UnreadableVendorResponse, match=r"HTTP 200 with a body that is not JSON"):
        await client.get_json("/html")


async def test_204_means_not_ready(client: VendorClient) -> None:
    with pytest.raises(NotReady):
        async with client.download(client.url("/pdf")):
            pass


async def test_truncated_body_is_an_error(client: VendorClient) -> None:
    with pytest.raises(IncompleteDownload):
        async with client.download(client.url("/short")) as download:
            async for _ in download.chunks():
                pass


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "data:,hello"])
async def test_non_http_urls_refused(client: VendorClient, url: str) -> None:
    with pytest.raises(UnsafeArtifactUrl):
        async with client.download(url):
            pass


async def test_connection_refused_is_transient(origins: Origins) -> None:
    async with aiohttp.ClientSession() as session:
        client = VendorClient(
            session,
            vendor="Perfecto",
            base_url="http://127.0.0.1:9",
            auth_headers=header("X-Token", Secret(TOKEN)),
            settings=FAST,
        )
        with pytest.raises(VendorUnavailable) as caught:
            await client.get_json("/ok")
    assert TOKEN not in str(caught.value)


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_repr_has_no_token(client: VendorClient) -> None:
    assert TOKEN not in repr(client)


async def test_slow_read_times_out(origins: Origins) -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "10"})
        await response.prepare(request)
        await asyncio.sleep(5)
        return response

    app = web.Application()
    app.router.add_get("/stall", stall)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            client = VendorClient(
                session,
                vendor="Perfecto",
                base_url=str(server.make_url("")),
                auth_headers=header("X-Token", Secret(TOKEN)),
                settings=HttpSettings(attempts=1, read_timeout=0.3),
            )
            with pytest.raises(IncompleteDownload):
                async with client.download(client.url("/stall")) as download:
                    async for _ in download.chunks():
                        pass
    finally:
        await server.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fe80::1]/x",
        "http://[::ffff:169.254.169.254]/x",
    ],
)
async def test_metadata_and_link_local_addresses_refused(client: VendorClient, url: str) -> None:
    with pytest.raises(UnsafeArtifactUrl, match="link-local"):
        async with client.download(url):
            pass


async def test_artifact_host_allow_list(origins: Origins) -> None:
    async with aiohttp.ClientSession() as session:
        client = VendorClient(
            session,
            vendor="Perfecto",
            base_url=str(origins.api.make_url("")),
            auth_headers=header("X-Token", Secret(TOKEN)),
            settings=HttpSettings(attempts=1, artifact_hosts=("files.example.com",)),
        )
        async with client.download(client.url("/file.bin")) as download:  # own origin: fine
            assert sum([len(p) async for c in download.chunks() for p in c]) == 100_000
        with pytest.raises(UnsafeArtifactUrl, match="artifact_hosts"):
            async with client.download("http://elsewhere.example.org/file.bin"):
                pass


async def test_artifact_over_the_size_limit_is_refused(origins: Origins) -> None:
    async with aiohttp.ClientSession() as session:
        client = VendorClient(
            session,
            vendor="Perfecto",
            base_url=str(origins.api.make_url("")),
            auth_headers=header("X-Token", Secret(TOKEN)),
            settings=HttpSettings(attempts=1, max_artifact_bytes=50_000),
        )
        with pytest.raises(UnsafeArtifactUrl, match="larger than"):
            async with client.download(client.url("/file.bin")) as download:
                async for _ in download.chunks():
                    pass


async def test_resolver_refuses_names_that_resolve_to_link_local() -> None:
    from archiver.urlpolicy import GuardedResolver

    resolver = GuardedResolver()
    try:
        assert await resolver.resolve("127.0.0.1", 80)
        with pytest.raises(OSError, match="link-local"):
            await resolver.resolve("169.254.169.254", 80)
    finally:
        await resolver.close()
