"""Fetching image URLs: only public addresses, pinned, redirects re-checked, bounded size and time.

A local HTTP server on 127.0.0.1 stands in for the internet; it is reachable only through the
policy's explicit `allow_hosts`. Every socket connect is recorded, so a refused URL can be shown
to have opened no connection at all.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli
import certifi
import pytest

from gateway.errors import BadRequest, PayloadTooLarge, UpstreamTimeout
from gateway.fetch import (
    FetchError,
    FetchPolicy,
    URLRefused,
    fetch_image,
    is_public_address,
)

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # 1,032 bytes; the content is not checked
# A few hundred bytes each that decompress to 20 MB, far past every limit of the tests.
BOMB = b"\0" * 20_000_000
COMPRESSED = {
    "/gzip": gzip.compress(BOMB),
    "/br": brotli.compress(BOMB),
    "/deflate": zlib.compress(BOMB),
}


class Handler(BaseHTTPRequestHandler):
    """Routes of the stand-in server; `server.hosts` collects the Host headers it saw."""

    def do_GET(self) -> None:
        self.server.hosts.append(self.headers.get("Host"))  # type: ignore[attr-defined]
        route = self.path.split("?")[0]
        port = port_of(self.server)
        redirects = {
            "/to-image": "/image.png",
            "/to-loopback-port": "http://127.0.0.1:1/image.png",
            "/to-localhost": f"http://localhost:{port}/image.png",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/loop": "/loop",
            "/to-data": "data:image/png;base64,iVBORw0KGgo=",
            "/to-mailto": "mailto:someone@example.com",
            "/to-javascript": "javascript:alert(1)",
            "/to-http-colon": "http:foo",
        }
        if route == "/image.png":
            self.reply(IMAGE)
        elif route in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[route])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
        elif route == "/undeclared-huge":
            self.send_response(200)
            self.end_headers()  # no length: the body runs until the connection closes
            self.close_connection = True
            for _ in range(64):
                self.wfile.write(b"x" * 1024)
        elif route in COMPRESSED:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Encoding", route.strip("/"))
            self.send_header("Content-Length", str(len(COMPRESSED[route])))
            self.end_headers()
            self.wfile.write(COMPRESSED[route])
        elif route == "/slow":
            time.sleep(1.0)
            self.reply(IMAGE)
        elif route == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "40")
            self.end_headers()
            for _ in range(40):  # each byte is quick; all of them are not
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        else:
            self.send_error(404)

    def reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    httpd.hosts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a socket connects to during the test (asyncio calls socket.connect)."""
    seen: list[Any] = []
    original = socket.socket.connect

    def recording_connect(self: socket.socket, address: Any) -> None:
        seen.append(address[:2] if isinstance(address, tuple) else address)
        original(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    return seen


def port_of(server: Any) -> int:
    return int(server.server_address[1])


def policy_for(server: ThreadingHTTPServer, **overrides: Any) -> FetchPolicy:
    settings: dict[str, Any] = {
        "max_bytes": 4096,
        "timeout_s": 5.0,
        "allow_hosts": frozenset({f"127.0.0.1:{port_of(server)}"}),
    }
    settings.update(overrides)
    return FetchPolicy(**settings)


def fetch(url: str, policy: FetchPolicy) -> bytes:
    return asyncio.run(fetch_image(url, policy))


def resolving(mapping: dict[str, list[str]]):
    """A getaddrinfo that answers `mapping` for the names in it and defers otherwise."""
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in mapping:
            return real(host, port, *args, **kwargs)
        answers = []
        for address in mapping[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            answers.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return answers

    return fake


def test_an_explicitly_allowed_local_server_is_fetched(server, connects):
    body = fetch(f"http://127.0.0.1:{port_of(server)}/image.png", policy_for(server))
    assert body == IMAGE
    assert connects == [("127.0.0.1", port_of(server))]  # the recorder does see connections


def test_the_connection_goes_to_the_verified_address_with_the_original_host_header(
    server, connects, monkeypatch
):
    port = port_of(server)
    monkeypatch.setattr(socket, "getaddrinfo", resolving({"images.example": ["127.0.0.1"]}))
    policy = policy_for(server, allow_hosts=frozenset({f"images.example:{port}"}))
    assert fetch(f"http://images.example:{port}/image.png", policy) == IMAGE
    assert connects == [("127.0.0.1", port)]
    assert server.hosts[-1] == f"images.example:{port}"


def test_a_name_is_resolved_once_so_a_rebinding_answer_cannot_redirect_the_connection(
    server, connects, monkeypatch
):
    port = port_of(server)
    answers = iter([["127.0.0.1"]] + [["10.9.9.9"]] * 10)
    lookups: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != "rebind.example":
            return real(host, *args, **kwargs)
        lookups.append(host)
        return resolving({host: next(answers)})(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    policy = policy_for(server, allow_hosts=frozenset({f"rebind.example:{port}"}))
    assert fetch(f"http://rebind.example:{port}/image.png", policy) == IMAGE
    assert lookups == ["rebind.example"]
    assert connects == [("127.0.0.1", port)]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_is_pinned_while_sni_and_the_certificate_check_use_the_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(certificate), "-days", "1",
         "-subj", "/CN=images.example", "-addext", "subjectAltName=DNS:images.example"],
        check=True, capture_output=True,
    )  # fmt: skip
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)

    def record_server_name(_socket: Any, name: str | None, _context: Any) -> None:
        names.append(name)

    context.sni_callback = record_server_name
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.hosts = []  # type: ignore[attr-defined]
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = port_of(httpd)
        monkeypatch.setattr(certifi, "where", lambda: str(certificate))  # trust our test CA
        names_to_loopback = {"images.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]}
        monkeypatch.setattr(socket, "getaddrinfo", resolving(names_to_loopback))
        allowed = frozenset({f"images.example:{port}", f"other.example:{port}"})
        policy = FetchPolicy(max_bytes=4096, timeout_s=5.0, allow_hosts=allowed)
        assert fetch(f"https://images.example:{port}/image.png", policy) == IMAGE
        assert names == ["images.example"]
        with pytest.raises(FetchError, match=r"not valid for 'other\.example'"):
            fetch(f"https://other.example:{port}/image.png", policy)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[fd12:3456::1]/",
        "http://[ff02::1]/",
        "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
        "http://[64:ff9b::a00:1]/",  # NAT64 wrapping 10.0.0.1
        "http://localhost/",
        "ftp://example.com/image.png",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:secret@example.com/image.png",
        "http://example.com\\@127.0.0.1/",
        "http://exa mple.com/",
        "http:///image.png",
    ],
)
def test_urls_to_non_public_addresses_are_refused_without_a_connection(url, connects):
    policy = FetchPolicy(max_bytes=4096, timeout_s=5.0)
    with pytest.raises(URLRefused) as refused:
        fetch(url, policy)
    assert refused.value.status == 400
    assert connects == []


def test_a_public_looking_name_that_resolves_to_loopback_is_refused(connects, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", resolving({"cdn.example.com": ["127.0.0.1"]}))
    with pytest.raises(URLRefused, match=r"cdn\.example\.com resolves to 127\.0\.0\.1"):
        fetch("https://cdn.example.com/photo.jpg", FetchPolicy(max_bytes=4096, timeout_s=5.0))
    assert connects == []


def test_a_name_with_any_private_address_among_public_ones_is_refused(connects, monkeypatch):
    answers = {"mixed.example.com": ["93.184.216.34", "2606:2800:220:1::1", "10.1.2.3"]}
    monkeypatch.setattr(socket, "getaddrinfo", resolving(answers))
    with pytest.raises(URLRefused, match=r"10\.1\.2\.3"):
        fetch("http://mixed.example.com/", FetchPolicy(max_bytes=4096, timeout_s=5.0))
    assert connects == []


@pytest.mark.parametrize(
    ("route", "refused_host"),
    [
        ("/to-loopback-port", "127.0.0.1"),
        ("/to-localhost", "localhost"),
        ("/to-metadata", "169.254.169.254"),
    ],
)
def test_a_redirect_from_the_allowed_server_to_a_private_address_is_refused(
    server, connects, route, refused_host
):
    port = port_of(server)
    with pytest.raises(URLRefused, match=refused_host):
        fetch(f"http://127.0.0.1:{port}{route}", policy_for(server))
    assert connects == [("127.0.0.1", port)]  # only the allowed server, never the target


def test_a_redirect_within_the_allowed_server_is_followed(server):
    assert fetch(f"http://127.0.0.1:{port_of(server)}/to-image", policy_for(server)) == IMAGE


def test_redirects_are_limited(server, connects):
    port = port_of(server)
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        fetch(f"http://127.0.0.1:{port}/loop", policy_for(server, max_redirects=3))
    assert len(connects) == 4


@pytest.mark.parametrize("route", ["/to-data", "/to-mailto", "/to-javascript", "/to-http-colon"])
def test_a_redirect_to_a_non_http_url_is_refused_with_a_reason(server, route):
    with pytest.raises(URLRefused, match="redirected to a URL that is not a valid http"):
        fetch(f"http://127.0.0.1:{port_of(server)}{route}", policy_for(server))


@pytest.mark.parametrize("route", sorted(COMPRESSED))
def test_a_compressed_answer_is_refused_without_being_decompressed(server, route):
    assert len(COMPRESSED[route]) < 30_000  # small on the wire: the bomb is in the decoding
    with pytest.raises(FetchError, match="compressed body"):
        fetch(f"http://127.0.0.1:{port_of(server)}{route}", policy_for(server, max_bytes=10**6))


def test_a_declared_length_over_the_limit_is_refused_before_reading(server):
    with pytest.raises(PayloadTooLarge, match="larger than 4096 bytes"):
        fetch(f"http://127.0.0.1:{port_of(server)}/declared-huge", policy_for(server))


def test_a_body_without_a_length_is_cut_off_past_the_limit(server):
    with pytest.raises(PayloadTooLarge):
        fetch(f"http://127.0.0.1:{port_of(server)}/undeclared-huge", policy_for(server))


def test_a_body_of_exactly_the_limit_is_accepted(server):
    url = f"http://127.0.0.1:{port_of(server)}/image.png"
    assert fetch(url, policy_for(server, max_bytes=len(IMAGE))) == IMAGE
    with pytest.raises(PayloadTooLarge):
        fetch(url, policy_for(server, max_bytes=len(IMAGE) - 1))


def test_a_slow_server_hits_the_time_limit(server):
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        fetch(f"http://127.0.0.1:{port_of(server)}/slow", policy_for(server, timeout_s=0.3))
    assert time.monotonic() - started < 0.9


def test_the_time_limit_covers_the_whole_transfer_not_each_read(server):
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        fetch(f"http://127.0.0.1:{port_of(server)}/trickle", policy_for(server, timeout_s=0.5))
    assert time.monotonic() - started < 1.2


def test_http_errors_and_unreachable_hosts_are_fetch_errors(server, monkeypatch):
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(f"http://127.0.0.1:{port_of(server)}/missing", policy_for(server))
    with pytest.raises(FetchError, match="could not fetch"):
        fetch("http://127.0.0.1:1/", policy_for(server, allow_hosts=frozenset({"127.0.0.1:1"})))

    def unknown(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(FetchError, match="could not resolve"):
        fetch("http://nowhere.example/", FetchPolicy(max_bytes=10, timeout_s=1.0))


def test_fetch_errors_are_bad_requests():
    assert issubclass(URLRefused, FetchError) and issubclass(FetchError, BadRequest)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("2002:808:808::1", True),  # 6to4 wrapping a public address
        ("100.127.255.255", False),
        ("198.18.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("fec0::1", False),
        ("::ffff:8.8.8.8", False),  # never what a resolver returns for a v4 name; refused
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
    ],
)
def test_public_addresses_are_told_apart(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://%31%32%37.0.0.1/", "percent-encoded host names"),
        ("http://ex%61mple.com/", "percent-encoded host names"),
        ("http://[fe80::1%25eth0]/", "zone identifiers"),
    ],
)
def test_escaped_hosts_are_refused_with_the_real_reason(url, reason, connects):
    with pytest.raises(URLRefused, match=reason):
        fetch(url, FetchPolicy(max_bytes=100, timeout_s=3.0))
    assert connects == []
