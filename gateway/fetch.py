"""Fetching user-supplied image URLs (the /batch API's `image_urls`) without opening the
gateway's own network to the caller (server-side request forgery).

Every URL, and every redirect target, goes through the same gate before any connection:

1. http or https only, no credentials, no control characters or backslashes;
2. the host is resolved once (getaddrinfo, which also reads the numeric spellings an attacker
   uses to dodge string filters: `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`);
3. every resolved address must be public (see `is_public_address`), or the URL is refused;
4. the connection goes to that verified address, pinned, while the request carries the original
   Host header and TLS server name (SNI, certificate check), so a DNS answer that changes between
   check and connect (DNS rebinding) cannot redirect it.

Redirects are followed by hand, at most `max_redirects`, each target checked the same way. The
body is streamed and abandoned once it passes `max_bytes`; one deadline covers the lookups,
connections, redirects and transfer. The bytes are not interpreted here: image I/O sniffs them.
Environment proxies are ignored (`trust_env=False`), since a proxy would connect in our place.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import httpx

from gateway.errors import BadRequest, PayloadTooLarge, UpstreamTimeout

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH: Final = 2048
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
SHARED_ADDRESS_SPACE: Final = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT
NAT64_PREFIX: Final = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})
IDENTITY_ENCODINGS: Final = frozenset({"", "identity"})
REQUEST_HEADERS: Final = {
    "Accept": "image/jpeg, image/png, image/webp;q=0.9, */*;q=0.1",
    "Accept-Encoding": "identity",  # the size limit then counts the bytes that arrive
    "User-Agent": "facet-gateway",
}


class FetchError(BadRequest):
    """The URL could not be fetched: unreachable, an HTTP error, too many redirects."""


class URLRefused(FetchError):
    """The URL was refused by policy before any connection was made."""


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for fetching one image.

    `allow_hosts` lists exact "host:port" pairs (IPv6 hosts in brackets, e.g. "[::1]:8080") that
    skip the public-address check; the connection is still pinned to the address resolved. It
    exists for tests against a local server and must stay empty in production.
    """

    max_bytes: int
    timeout_s: float
    max_redirects: int = 3
    allow_hosts: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.timeout_s <= 0 or self.max_redirects < 0:
            raise ValueError("max_bytes and timeout_s must be positive, max_redirects ≥ 0")


@dataclass(frozen=True)
class Target:
    """A checked URL and the address the request will be sent to."""

    url: str  # as given (fragment dropped): the base for relative redirects
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, lower case, without brackets
    port: int
    target: str  # path and query
    address: IPAddress  # verified and pinned

    @property
    def host_header(self) -> str:
        host = bracketed(self.host)
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def pinned_url(self) -> str:
        literal = bracketed(str(self.address))
        return f"{self.scheme}://{literal}:{self.port}{self.target}"


async def fetch_image(url: str, policy: FetchPolicy) -> bytes:
    """Download the body at `url` under `policy`, following redirects by hand.

    Raises URLRefused (400) for a URL the policy forbids, FetchError (400) when fetching fails,
    PayloadTooLarge (413) past `max_bytes`, and UpstreamTimeout (504) past `timeout_s`.
    """
    try:
        async with asyncio.timeout(policy.timeout_s):
            return await follow(url, policy)
    except TimeoutError:
        raise UpstreamTimeout(
            f"fetching {describe(url)} took longer than {policy.timeout_s:g} s"
        ) from None


async def follow(url: str, policy: FetchPolicy) -> bytes:
    current = url
    for hop in range(policy.max_redirects + 1):
        try:
            target = await check_url(current, policy)
        except URLRefused as refused:
            if hop == 0:
                raise
            raise URLRefused(f"{describe(url)} redirected to a refused URL: {refused}") from None
        body, location = await fetch_once(target, policy)
        if location is None:
            return body
        current = urllib.parse.urljoin(target.url, location)
    raise FetchError(f"{describe(url)} redirected more than {policy.max_redirects} times")


async def check_url(url: str, policy: FetchPolicy) -> Target:
    """Parse and resolve `url`; refuse it unless every address is public (or it is allowed)."""
    parts = parse_url(url)
    host = ascii_host(parts.hostname or "")
    port = url_port(parts)
    scheme = parts.scheme.lower()
    addresses = await resolve(host, port)
    if f"{bracketed(host)}:{port}" not in policy.allow_hosts:
        for address in addresses:
            if not is_public_address(address):
                raise URLRefused(
                    f"{bracketed(host)} resolves to {address}, which is not a public address"
                )
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    url_without_fragment = urllib.parse.urlunsplit(parts._replace(fragment=""))
    return Target(url_without_fragment, scheme, host, port, target, addresses[0])


def parse_url(url: str) -> urllib.parse.SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise URLRefused(f"URLs may be at most {MAX_URL_LENGTH} characters")
    if any(ord(char) <= 0x20 or char in "\\\x7f" for char in url):
        raise URLRefused("the URL contains spaces, control characters or backslashes")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as error:
        raise URLRefused(f"not a valid URL: {error}") from None
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise URLRefused("only http and https URLs can be fetched")
    if parts.username is not None or parts.password is not None:
        raise URLRefused("URLs with credentials are not fetched")
    if not parts.hostname:
        raise URLRefused("the URL has no host")
    return parts


def ascii_host(host: str) -> str:
    """The host as DNS sees it: IDNA-encoded names, IP literals as written; no zone ids and no
    percent-escapes (resolvers and proxies disagree on decoding them, a classic filter dodge)."""
    if "%" in host:
        if host.startswith("[") or ":" in host:
            raise URLRefused("IPv6 zone identifiers are not allowed")
        raise URLRefused("percent-encoded host names are not allowed")
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise URLRefused(f"invalid host name {host!r}") from None


def url_port(parts: urllib.parse.SplitResult) -> int:
    try:
        port = parts.port
    except ValueError:
        raise URLRefused("the URL's port is not a number between 0 and 65535") from None
    if port == 0:
        raise URLRefused("port 0 cannot be fetched")
    return port if port is not None else DEFAULT_PORTS[parts.scheme.lower()]


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to for TCP, in resolver order, without duplicates."""
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchError(f"could not resolve host {host!r}: {error}") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchError(f"host {host!r} has no IPv4 or IPv6 address")
    return addresses


def is_public_address(address: IPAddress) -> bool:
    """True for a globally routable unicast address; False for private, loopback, link-local
    (169.254/16 with cloud metadata at 169.254.169.254, fe80::/10), shared (100.64/10),
    multicast, reserved, unspecified, site-local and unique-local (fc00::/7) addresses, and for
    IPv6 addresses that embed such an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64)."""
    if any(not is_public_address(inner) for inner in embedded_ipv4(address)):
        return False
    flags = (
        address.is_private,
        address.is_loopback,
        address.is_link_local,
        address.is_multicast,
        address.is_reserved,
        address.is_unspecified,
        isinstance(address, ipaddress.IPv6Address) and address.is_site_local,
        isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE,
    )
    return address.is_global and not any(flags)


def embedded_ipv4(address: IPAddress) -> Iterator[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries, which a gateway or tunnel may deliver to."""
    if not isinstance(address, ipaddress.IPv6Address):
        return
    if address.ipv4_mapped is not None:
        yield address.ipv4_mapped
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield from address.teredo
    if address in NAT64_PREFIX or (address in IPV4_COMPATIBLE and int(address) > 1):
        yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


async def fetch_once(target: Target, policy: FetchPolicy) -> tuple[bytes, str | None]:
    """One request to the pinned address: (body, None), or (b"", Location) for a redirect."""
    extensions = {}
    if target.scheme == "https" and not is_ip_literal(target.host):
        extensions["sni_hostname"] = target.host  # TLS name and certificate check: the host
    headers = {**REQUEST_HEADERS, "Host": target.host_header}
    timeout = httpx.Timeout(policy.timeout_s)
    try:
        async with httpx.AsyncClient(
            trust_env=False, follow_redirects=False, timeout=timeout
        ) as client:
            request = client.build_request(
                "GET", target.pinned_url, headers=headers, extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                return await read_response(response, target, policy)
            finally:
                await response.aclose()
    except httpx.TimeoutException:
        raise TimeoutError from None
    except httpx.InvalidURL:
        # httpx parses a redirect's Location while receiving the answer, even when it does
        # not follow it; the URL we send is built by us, so the Location is what was invalid.
        raise URLRefused(
            f"{describe(target.url)} redirected to a URL that is not a valid http(s) URL"
        ) from None
    except httpx.HTTPError as error:
        raise FetchError(f"could not fetch {describe(target.url)}: {error}") from None


async def read_response(
    response: httpx.Response, target: Target, policy: FetchPolicy
) -> tuple[bytes, str | None]:
    location = response.headers.get("Location")
    if response.status_code in REDIRECT_CODES and location is not None:
        return b"", location
    if response.status_code != httpx.codes.OK:
        raise FetchError(f"{describe(target.url)} answered HTTP {response.status_code}")
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in IDENTITY_ENCODINGS:
        # Decoding first would let a few hundred compressed bytes become gigabytes in memory
        # before the size limit is applied; we asked for identity and take nothing else.
        raise FetchError(
            f"{describe(target.url)} sent a compressed body (Content-Encoding: {encoding[:40]}); "
            "only uncompressed images are fetched"
        )
    too_large = PayloadTooLarge(
        f"the file at {describe(target.url)} is larger than {policy.max_bytes} bytes"
    )
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.aiter_raw():  # the bytes as they arrive, never decompressed
        body += chunk
        if len(body) > policy.max_bytes:
            raise too_large
    return bytes(body), None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def describe(url: str) -> str:
    """The URL's scheme and host for messages (paths and queries may carry tokens)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "the URL"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.netloc else "the URL"
