"""Requests written straight on a socket, for what HTTP clients refuse to send (a 100 KB URL, a
Content-Length with no body behind it, a header of a megabyte)."""

from __future__ import annotations

import datetime
import re
import socket
import time

import httpx


def raw_request(port: int, head: bytes, timeout: float = 30.0) -> httpx.Response:
    """`head` (and any body) sent to the gateway on 127.0.0.1:`port`; the answer, read up to
    its Content-Length, or to the end of the connection when it declares none."""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {data!r}"
            data += chunk
        header, _, body = data.partition(b"\r\n\r\n")
        found = re.search(rb"(?im)^content-length:\s*(\d+)", header)
        while (found is None or len(body) < int(found.group(1))) and (chunk := sock.recv(65536)):
            body += chunk
        assert found is None or len(body) == int(found.group(1)), "cut inside the answer"
    lines = header.decode("latin-1").split("\r\n")
    fields = [
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:])
    ]
    answer = httpx.Response(int(lines[0].split(" ", 2)[1]), content=body, headers=fields)
    answer.elapsed = datetime.timedelta(seconds=time.monotonic() - began)
    return answer
