"""Concurrency sweep of every served model with NVIDIA's perf_analyzer (`make perf`).

Against a running Triton (`make up`: gRPC 127.0.0.1:8001), each installed float model and uint8
ensemble of the repository is measured at each concurrency level on real-photo tiles (the
astronaut photo, written as perf_analyzer `--input-data` JSON with `--shape` for the variable
dimensions). perf_analyzer's CSV for each run stays under perf/reports/raw/; a markdown summary
(throughput, p50/p95/p99, Triton's queue and compute times) is printed and saved next to them.

The binary comes from `python -m perf.install_perf_analyzer` (run here when needed).
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.grpc import model_config_pb2

from perf import samples
from perf.install_perf_analyzer import InstallError, install
from perf.servers import installed_models, read_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAW = ROOT / "perf" / "reports" / "raw"
DISTINCT_TILES = 8
US_PER_MS = 1000.0
NO_STABILITY_CHECK = 10_000  # percent: any three windows count as stable


@dataclass(frozen=True)
class ModelInput:
    """The one image input of an SR model or ensemble, as its config declares it."""

    model: str
    name: str
    dtype: str  # "FP32" or "UINT8"
    channels_first: bool  # [3, -1, -1] (float models) vs [-1, -1, 3] (ensembles)

    def shape(self, tile: int) -> list[int]:
        return [3, tile, tile] if self.channels_first else [tile, tile, 3]

    def tensors(self, tile: int, count: int) -> np.ndarray[Any, Any]:
        """`count` photo tiles in this input's layout and datatype (no batch dimension)."""
        tiles = samples.photo_tiles(count, tile)
        if self.channels_first:
            return samples.to_nchw_float(tiles)
        return tiles


@dataclass(frozen=True)
class Row:
    """One perf_analyzer measurement (one model, one concurrency), from its CSV."""

    model: str
    concurrency: int
    throughput: float  # inferences/s
    p50_ms: float
    p95_ms: float
    p99_ms: float
    queue_ms: float
    compute_ms: float  # compute input + infer + output
    csv: Path


def image_input(repository: Path, model: str) -> ModelInput | None:
    """The image input of a float SR model (FP32 [3,H,W] in and out) or of a uint8 ensemble
    (UINT8 [H,W,3] in); None for anything else, such as the pre/post-processing graphs."""
    config = read_config(repository / model / "config.pbtxt")
    if len(config.input) != 1 or len(config.output) != 1:
        return None
    tensor, output = config.input[0], config.output[0]
    dims = list(tensor.dims)
    datatype = model_config_pb2.DataType.Name(tensor.data_type).removeprefix("TYPE_")
    output_type = model_config_pb2.DataType.Name(output.data_type).removeprefix("TYPE_")
    if datatype == output_type == "FP32" and dims == [3, -1, -1]:
        return ModelInput(model, tensor.name, datatype, channels_first=True)
    if datatype == "UINT8" and dims == [-1, -1, 3] and config.platform == "ensemble":
        return ModelInput(model, tensor.name, datatype, channels_first=False)
    return None


def parse_csv(path: Path, model: str) -> list[Row]:
    """Read perf_analyzer's `-f` CSV (latencies in µs) into rows."""
    rows = []
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):

            def ms(key: str, record: dict[str, str] = record) -> float:
                value = record.get(key, "")
                return float(value) / US_PER_MS if value not in ("", None) else math.nan

            compute = sum(
                ms(key)
                for key in (
                    "Server Compute Input",
                    "Server Compute Infer",
                    "Server Compute Output",
                )
            )
            rows.append(
                Row(
                    model=model,
                    concurrency=int(float(record["Concurrency"])),
                    throughput=float(record["Inferences/Second"]),
                    p50_ms=ms("p50 latency"),
                    p95_ms=ms("p95 latency"),
                    p99_ms=ms("p99 latency"),
                    queue_ms=ms("Server Queue"),
                    compute_ms=compute,
                    csv=path,
                )
            )
    return rows


def command_for(
    binary: Path,
    url: str,
    model_input: ModelInput,
    data: Path,
    tile: int,
    concurrency: int,
    requests: int,
    windows: int,
    warmup: int,
    output: Path,
) -> list[str]:
    shape = ",".join(str(d) for d in model_input.shape(tile))
    return [
        str(binary),
        "-m",
        model_input.model,
        "-u",
        url,
        "-i",
        "grpc",
        "--input-data",
        str(data),
        "--shape",
        f"{model_input.name}:{shape}",
        "--concurrency-range",
        str(concurrency),
        # Windows close after `requests` answers, so their length follows the model's speed;
        # the stability check is switched off (a huge -s) and the average of `windows` windows
        # is reported, which bounds the run time.
        "--measurement-mode",
        "count_windows",
        "--measurement-request-count",
        str(requests),
        "--max-trials",
        str(windows),
        "--stability-percentage",
        str(NO_STABILITY_CHECK),
        "--warmup-request-count",
        str(warmup),
        "-f",
        str(output),
    ]


def render_summary(rows: Sequence[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| model | c | infer/s | p50 ms | p95 ms | p99 ms | server queue ms | server compute ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.model} | {row.concurrency} | {row.throughput:.3f} | {row.p50_ms:,.1f} | "
            f"{row.p95_ms:,.1f} | {row.p99_ms:,.1f} | {row.queue_ms:,.1f} | "
            f"{row.compute_ms:,.1f} |"
        )
    return "\n".join(lines) + "\n"


def ready_models(url: str, timeout_s: float = 10.0) -> set[str]:
    """Names of the models the Triton at `url` reports READY; exit when none answers."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                if client.is_server_live():
                    index = client.get_model_repository_index()
                    return {model.name for model in index.models if model.state == "READY"}
            except Exception:  # not up yet: the client raises on a refused connection
                pass
            time.sleep(0.5)
    finally:
        client.close()
    raise SystemExit(f"no Triton answers at {url}; start one with `make up`")


def int_list(text: str) -> list[int]:
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,2,4,8, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m perf.run_perf_analyzer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--url", default="127.0.0.1:8001", help="Triton gRPC address (default: %(default)s)")
    add("--repository", type=Path, default=ROOT / "model_repository", help="to list the models")
    add("--models", nargs="*", help="models to measure (default: every installed SR model)")
    add("--concurrency", type=int_list, default=[1, 2, 4, 8], help="levels (1,2,4,8)")
    add("--tile", type=int, default=64, help="tile side sent per request (%(default)s)")
    add(
        "--requests-per-client",
        type=int,
        default=2,
        help="answers per concurrent client that close a measurement window (2)",
    )
    add("--min-requests", type=int, default=4, help="at least this many per window (4)")
    add("--windows", type=int, default=3, help="measurement windows per level, averaged (3)")
    add("--warmup", type=int, default=1, help="warm-up requests before each level (1)")
    add("--timeout", type=float, default=300.0, help="seconds allowed per perf_analyzer run")
    add("--out", type=Path, default=DEFAULT_RAW, help="CSV and summary directory (%(default)s)")
    add("--perf-analyzer", type=Path, default=None, help="binary (default: installed here)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        binary = args.perf_analyzer or install()
    except InstallError as error:
        sys.stderr.write(f"perf_analyzer is not available: {error}\n")
        return 1
    ready = ready_models(args.url)
    names = args.models or [name for name in installed_models(args.repository) if name in ready]
    inputs = [found for name in names if (found := image_input(args.repository, name))]
    if not inputs:
        sys.stderr.write(f"no SR model or ensemble of {args.repository} is ready at {args.url}\n")
        return 1
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    failures: list[str] = []
    for model_input in inputs:
        data = samples.write_perf_analyzer_json(
            args.out / f"{stamp}-{model_input.model}-input.json",
            model_input.name,
            model_input.tensors(args.tile, DISTINCT_TILES),
        )
        for level in args.concurrency:
            requests = max(args.min_requests, level * args.requests_per_client, level)
            output = args.out / f"{stamp}-{model_input.model}-c{level}.csv"
            command = command_for(
                binary,
                args.url,
                model_input,
                data,
                args.tile,
                level,
                requests,
                args.windows,
                args.warmup,
                output,
            )
            sys.stderr.write(
                f"{model_input.model} c={level}: {args.windows} windows of {requests} requests\n"
            )
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=args.timeout, check=False
                )
            except subprocess.TimeoutExpired:
                failures.append(f"{model_input.model} c={level}: timed out after {args.timeout} s")
                continue
            if done.returncode != 0 or not output.is_file():
                tail = (done.stdout + done.stderr).strip()[-800:]
                failures.append(f"{model_input.model} c={level}: exit {done.returncode}\n{tail}")
                continue
            (args.out / f"{output.stem}.log").write_text(done.stdout + done.stderr)
            rows += parse_csv(output, model_input.model)
    header = (
        f"# perf_analyzer sweep {stamp} ({args.url}, {args.tile}×{args.tile} astronaut tiles, "
        f"batch 1 per request, gRPC, average of {args.windows} windows per level)"
    )
    summary = render_summary(rows, header)
    (args.out / f"{stamp}-summary.md").write_text(summary)
    sys.stdout.write(summary)
    for failure in failures:
        sys.stderr.write(f"FAILED {failure}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
