"""Command line: `python -m serving serve --repository model_repository`."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from serving.errors import ServingError
from serving.launcher import TritonServer, TritonSettings
from serving.stack import StackSettings, run_stack

_DEFAULTS = TritonSettings(repository=Path("model_repository"))
_WATCH_INTERVAL_S = 0.5

DESCRIPTION = """\
Run a real Triton Inference Server in the foreground on a model repository.

Models whose config.pbtxt says `backend: "facet_ort"` are served by Facet's ONNX Runtime
backend (CPU). Triton is taken from the nvidia-pytriton wheel, else from a `tritonserver`
on PATH (NGC image). Once Triton reports every model ready, the command prints where each
endpoint listens and keeps running; Ctrl-C or SIGTERM stops Triton cleanly (in-flight
requests finish, models unload). A model that fails to load makes the command exit 1 with
the end of the Triton log.
"""


STACK_DESCRIPTION = """\
Run Triton and Facet's REST gateway together in the foreground: Triton first (every model
ready), then the gateway on 127.0.0.1 (port 8000 by default) pointed at Triton's gRPC port.
Either process that dies is restarted (with growing pauses, up to 30 s); meanwhile the gateway
answers 503 with Retry-After. Ctrl-C or SIGTERM stops the gateway, then Triton. `make up` runs
this in the background.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for `python -m serving`."""
    parser = argparse.ArgumentParser(
        prog="python -m serving",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run tritonserver in the foreground",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_triton_arguments(serve)
    stack = commands.add_parser(
        "stack",
        help="run tritonserver and the REST gateway together",
        description=STACK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_triton_arguments(stack)
    stack.add_argument(
        "--gateway-port", type=int, default=8000, help="gateway port (default: %(default)s)"
    )
    stack.add_argument(
        "--gateway-log",
        type=Path,
        default=Path("run/gateway.log"),
        help="file receiving the gateway's output (default: %(default)s)",
    )
    return parser


def _add_triton_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository",
        type=Path,
        action="append",
        required=True,
        help="model repository directory (repeat to serve several)",
    )
    parser.add_argument(
        "--host",
        default=_DEFAULTS.host,
        help="address all three endpoints bind to (default: %(default)s; "
        "0.0.0.0 exposes them to the network)",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=_DEFAULTS.grpc_port,
        help="gRPC inference port (default: %(default)s)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=_DEFAULTS.http_port,
        help="HTTP/REST inference and health port (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=_DEFAULTS.metrics_port,
        help="Prometheus metrics port (default: %(default)s)",
    )
    parser.add_argument(
        "--model-config-name",
        default=None,
        help="load configs/<NAME>.pbtxt instead of config.pbtxt where present",
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="file receiving Triton's output (default: <run-dir>/tritonserver.log)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=_DEFAULTS.run_dir,
        help="where the assembled backend directory and log go (default: %(default)s)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=_DEFAULTS.startup_timeout_s,
        help="seconds to wait for every model to be ready (default: %(default)s)",
    )


def settings_from_args(args: argparse.Namespace) -> TritonSettings:
    """Turn parsed `serve` arguments into launcher settings."""
    return TritonSettings(
        repository=list(args.repository),
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        log_file=args.log_file,
        model_config_name=args.model_config_name,
        startup_timeout_s=args.startup_timeout,
        run_dir=args.run_dir,
    )


def _say(message: str, stream: TextIO | None = None) -> None:
    """Write one line for the operator; this CLI's output is its user interface."""
    print(message, file=stream or sys.stdout, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so `with TritonServer` stops Triton either way.
    raise KeyboardInterrupt


def serve(settings: TritonSettings) -> int:
    """Run Triton until it dies (exit 1) or we are interrupted (exit 0 after a clean stop)."""
    signal.signal(signal.SIGTERM, _interrupt)
    server = TritonServer(settings)
    try:
        with server:
            _announce(server)
            while server.poll() is None:
                time.sleep(_WATCH_INTERVAL_S)
            _say(f"tritonserver exited with code {server.poll()}; see {server.log_path}")
            return 1
    except KeyboardInterrupt:
        _say("stopped tritonserver")
        return 0


def _announce(server: TritonServer) -> None:
    """Tell the operator where each endpoint listens."""
    _say(f"Triton is ready (log: {server.log_path})")
    _say(f"  gRPC:    {server.grpc_url}")
    _say(f"  HTTP:    {server.http_url}")
    _say(f"  metrics: {server.metrics_url}")
    _say("Press Ctrl-C to stop.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m serving`; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "stack":
            signal.signal(signal.SIGTERM, _interrupt)
            stack = StackSettings(
                triton=settings_from_args(args),
                gateway_port=args.gateway_port,
                gateway_log=args.gateway_log,
            )
            return run_stack(stack, _say)
        return serve(settings_from_args(args))
    except ServingError as error:
        _say(f"error: {error}", sys.stderr)
        return 1
