"""Which artifact URLs archiver agrees to fetch.

Artifact URLs come from vendor records, so they are untrusted input: only http(s), never
link-local or cloud metadata addresses (169.254.0.0/16 holds the AWS/GCP/Azure metadata
service, fd00:ec2::254 AWS's IPv6 one), and, when the operator lists artifact hosts, only
those. Names are checked as written; the resolver below also refuses names that resolve
to such addresses, so a DNS answer cannot smuggle one in.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from archiver.errors import UnsafeArtifactUrl

FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "169.254.0.0/16",  # IPv4 link-local, cloud metadata (169.254.169.254)
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "0.0.0.0/8",
    )
)


@functools.lru_cache(maxsize=1024)  # every artifact URL is checked; hosts repeat
def is_forbidden_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in FORBIDDEN_NETWORKS)


def check_artifact_url(url: str, *, allowed_hosts: frozenset[str] = frozenset()) -> None:
    """Raise :class:`UnsafeArtifactUrl` unless ``url`` may be fetched."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeArtifactUrl(f"refusing artifact URL with scheme {scheme or 'none'!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeArtifactUrl("refusing artifact URL without a host")
    if is_forbidden_address(host):
        raise UnsafeArtifactUrl(f"refusing artifact URL on link-local/metadata address {host}")
    if allowed_hosts and host not in allowed_hosts:
        raise UnsafeArtifactUrl(f"refusing artifact URL on {host}: not in http.artifact_hosts")


class GuardedResolver(AbstractResolver):
    """The default resolver, minus link-local and metadata addresses."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [result for result in results if not is_forbidden_address(result["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to link-local or metadata addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
