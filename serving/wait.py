"""`python -m serving.wait URL --pid-file F`: block until URL answers 200 (for `make up`).

Fails early, with the log's tail, if the background process named in the pid file dies."""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from serving.launcher import read_log_tail


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.wait", description=__doc__)
    parser.add_argument("url", help="URL that answers 200 once the service is ready")
    parser.add_argument("--pid-file", type=Path, required=True, help="pid of the process started")
    parser.add_argument("--log", type=Path, help="log to show if the process dies")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    args = parser.parse_args()
    pid = int(args.pid_file.read_text().strip())
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if answers(args.url):
            print(f"ready: {args.url}")
            return 0
        if not is_alive(pid):
            tail = read_log_tail(args.log) if args.log else ""
            print(f"process {pid} exited before {args.url} was ready\n{tail}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"timed out after {args.timeout:.0f} s waiting for {args.url}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
