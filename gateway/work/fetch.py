"""Outgoing HTTP to addresses a client names: documents by URL, and webhook deliveries.

The rules, for every hop: `http` or `https` only; the host is resolved once and every address
it resolves to is checked; loopback, private, link-local (cloud metadata among them),
multicast, reserved and other non-public addresses are refused unless `fetch.allow_hosts`
names the host or `fetch.allow_networks` holds the address. The connection then goes to the
checked address itself (the URL's host travels in the Host header and as the TLS server name,
so certificates are still verified against it): a second DNS answer cannot move the request
elsewhere (no DNS rebinding). Redirects are followed by hand, at most `fetch.max_redirects`,
each hop checked the same way. Environment proxies are ignored (they would connect elsewhere).

A document's size is limited while it streams (a declared Content-Length over the limit is
refused before any of the body is read), the whole fetch by `fetch.timeout_s`. Its type is
not taken from the server: the intake detects it from the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator
from urllib.parse import unquote

import httpx
import msgspec

from gateway.config import FetchSettings, Settings
from gateway.errors import (
    FetchFailedError,
    FetchTimeoutError,
    RemoteFileTooLargeError,
    TooManyRedirectsError,
    UrlAddressError,
    UrlError,
    UrlSchemeError,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048
REDIRECTS = frozenset({301, 302, 303, 307, 308})
SCHEMES = frozenset({"http", "https"})
# Cloud metadata services outside the link-local range (AWS IPv6, Alibaba): named as such.
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


class Fetched(msgspec.Struct, frozen=True, kw_only=True):
    content: bytes
    file_name: str | None  # the last segment of the final URL's path, if any
    url: str  # the URL the bytes came from, after redirects


def document_limit(settings: Settings, plan: str) -> int:
    """The largest document a tenant of `plan` may send, in bytes (uploads and URLs alike)."""
    return min(settings.limits.max_upload_bytes, int(settings.plans[plan].max_upload_mb * 2**20))


def address_kind(ip: IPAddress) -> str | None:
    """Why this address is not public (None: it is)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (
        (ip in METADATA, "a cloud metadata address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


class AddressPolicy:
    """Where outgoing requests may connect: public addresses, plus what config allows."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self.hosts = frozenset(settings.allow_hosts)
        self.networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in settings.allow_networks
        )

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """The reason `ip` (an address of `host`) is refused, or None."""
        if host.lower() in self.hosts or any(ip in network for network in self.networks):
            return None
        return address_kind(ip)


def parse_url(url: str) -> httpx.URL:
    """The URL, if it is an absolute http(s) URL with a host; else a clear UrlError."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise UrlError(f"the URL is not valid: {exc}") from exc
    if parsed.scheme not in SCHEMES:
        raise UrlSchemeError(
            f"the URL's scheme is {parsed.scheme or 'missing'!r}; only http and https URLs "
            "are fetched",
            scheme=parsed.scheme,
        )
    if not parsed.raw_host:
        raise UrlError("the URL has no host")
    return parsed


async def checked_addresses(url: httpx.URL, policy: AddressPolicy) -> list[IPAddress]:
    """Resolve the URL's host once and check every address it resolves to: the addresses to
    connect to, in the resolver's order."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            raise FetchFailedError(f"the host {host!r} could not be resolved", host=host) from exc
        # an IPv6 address may carry a zone ("fe80::1%eth0"); the address is what is checked
        addresses = list(
            dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos)
        )
    for ip in addresses:
        reason = policy.refusal(host, ip)
        if reason is not None:
            raise UrlAddressError(
                f"the host {host!r} resolves to {ip}, {reason}; it is refused unless "
                "fetch.allow_hosts or fetch.allow_networks allows it",
                host=host,
                address=str(ip),
            )
    return addresses


def _host_header(url: httpx.URL) -> str:
    host = url.raw_host.decode("ascii")
    host = f"[{host}]" if ":" in host else host
    return host if url.port is None else f"{host}:{url.port}"


@contextlib.asynccontextmanager
async def pinned_stream(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    policy: AddressPolicy,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> AsyncIterator[httpx.Response]:
    """One request (no redirects) to a checked address of `url` (the next one when a
    connection is refused), its body not read yet."""
    addresses = await checked_addresses(url, policy)
    host = url.raw_host.decode("ascii")
    for n, ip in enumerate(addresses, 1):
        request = client.build_request(
            method,
            url.copy_with(host=str(ip)),
            headers={**(headers or {}), "Host": _host_header(url)},
            content=content,
            extensions={} if host == str(ip) else {"sni_hostname": host},
        )
        try:
            response = await client.send(request, stream=True)
            break
        except httpx.ConnectError as exc:
            if n == len(addresses):
                raise FetchFailedError(f"{host} could not be reached: {exc}", host=host) from exc
        except httpx.TimeoutException as exc:
            raise FetchTimeoutError(f"{host} did not answer in time", host=host) from exc
        except httpx.HTTPError as exc:
            raise FetchFailedError(f"{host} could not be reached: {exc}", host=host) from exc
    try:
        yield response
    finally:
        await response.aclose()


def outgoing_client(settings: FetchSettings, timeout_s: float) -> httpx.AsyncClient:
    """A client for pinned requests: no redirects followed for us, no environment proxies."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=min(settings.connect_timeout_s, timeout_s)),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": "ocr-gateway"},
    )


async def fetch_document(url: str, settings: FetchSettings, max_bytes: int) -> Fetched:
    """The bytes at `url` (at most `max_bytes`), following checked redirects."""
    policy = AddressPolicy(settings)
    current = parse_url(url)
    try:
        async with asyncio.timeout(settings.timeout_s):
            async with outgoing_client(settings, settings.timeout_s) as client:
                for _ in range(settings.max_redirects + 1):
                    async with pinned_stream(client, "GET", current, policy) as response:
                        location = response.headers.get("Location")
                        if response.status_code in REDIRECTS and location:
                            current = parse_url(str(current.join(location)))
                            continue
                        content = await _read_body(response, current, max_bytes)
                        return Fetched(
                            content=content, file_name=_file_name(current), url=str(current)
                        )
    except TimeoutError as exc:
        raise FetchTimeoutError(
            f"fetching the URL took longer than {settings.timeout_s:g} s",
            timeout_s=settings.timeout_s,
        ) from exc
    raise TooManyRedirectsError(
        f"the URL redirected more than {settings.max_redirects} times",
        max_redirects=settings.max_redirects,
    )


async def _read_body(response: httpx.Response, url: httpx.URL, max_bytes: int) -> bytes:
    if not 200 <= response.status_code < 300:
        raise FetchFailedError(
            f"the URL answered {response.status_code} {response.reason_phrase}".rstrip(),
            status=response.status_code,
        )
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise RemoteFileTooLargeError(
            f"the URL's file is {int(declared)} bytes; the limit is {max_bytes}",
            declared_bytes=int(declared),
            limit_bytes=max_bytes,
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise RemoteFileTooLargeError(
                    f"the URL's file is over the limit of {max_bytes} bytes",
                    limit_bytes=max_bytes,
                )
            chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise FetchTimeoutError(f"{url.host} stopped sending in time") from exc
    except httpx.HTTPError as exc:
        raise FetchFailedError(f"reading the URL's file failed: {exc}") from exc
    return b"".join(chunks)


def _file_name(url: httpx.URL) -> str | None:
    name = unquote(url.path.rsplit("/", 1)[-1])
    return name[:255] or None
