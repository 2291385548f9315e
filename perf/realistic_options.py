"""The knobs of the user-level benchmark (`python -m perf.benchmark --full`): its command-line
flags, their defaults for a real run and for `--tiny`, and the options they make."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from clients.rest import FIRST_POLL_S
from perf.photos import GroupSource
from perf.realistic_results import SCENARIOS

DEFAULT_BUDGET_MIN: Final = 25.0
# Its own benchmark (perf.swap_video, its own report and budget), run after the others; only
# when named, since it takes a whole budget by itself.
SWAP_VIDEO: Final = "swap_video"
NAMED_SCENARIOS: Final = (*SCENARIOS, SWAP_VIDEO)
SWEEP_MODEL: Final = "realesr_general_x4v3"
LATENCY_MODEL: Final = "realesrgan_x4plus"

REAL_DEFAULTS: Final[dict[str, Any]] = {
    "sizes": [256, 512],
    "concurrency": [1, 4, 8],
    "direct_levels": [1, 8],
    "latency_side": 256,
    "requests_per_client": 1,
    "min_requests": 2,
    "restore_requests": 2,
    "floor_runs": 3,
    "floor_batches": [1, 4],
    "leak_requests": 1000,
    "leak_warmup": 100,
    "warmup": 1,
    "repeats": 1,
    "budget_min": DEFAULT_BUDGET_MIN,
    "group_photo": "auto",
    "poll_interval_s": FIRST_POLL_S,  # then ×1.5 up to 2 s, as clients.rest polls
}
# --tiny: tiny synthetic models (the real MTCNN), small inputs, a few requests: checks that
# every scenario runs end to end in about a minute, its numbers mean nothing.
TINY_DEFAULTS: Final[dict[str, Any]] = {
    **REAL_DEFAULTS,
    "sizes": [64],
    "concurrency": [1, 2],
    "direct_levels": [2],
    "latency_side": 64,
    "restore_requests": 1,
    "floor_runs": 1,
    "leak_requests": 100,
    "leak_warmup": 20,
    "budget_min": 10.0,
    "group_photo": "built",
    "poll_interval_s": 0.02,
}


@dataclass
class RealisticOptions:
    scenarios: list[str]
    budget_s: float
    sizes: list[int]
    levels: list[int]
    direct_levels: list[int]
    sweep_model: str
    latency_model: str  # "" skips the single-image latency case
    latency_side: int
    requests_per_client: int
    min_requests: int
    restore_requests: int
    restore_upscale: int
    floor_runs: int
    floor_batches: list[int]
    leak_requests: int
    leak_warmup: int
    warmup: int
    repeats: int
    group_photo: GroupSource
    tiny: bool
    repository: Path | None
    work: Path
    out: Path
    tag: str | None
    poll_interval_s: float
    gateway_env: dict[str, str] = field(default_factory=dict)
    sample_interval_s: float = 0.5
    show_progress: bool = True

    def requests(self, concurrency: int) -> int:
        return max(self.min_requests, concurrency * self.requests_per_client, concurrency)


def scenario_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in NAMED_SCENARIOS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"scenarios are a comma list of {', '.join(NAMED_SCENARIOS)}; got {text!r}"
        )
    return [name for name in NAMED_SCENARIOS if name in names]


def positive_ints(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,4,8; got {text!r}")
    return sorted(set(values))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags only --full reads (it shares --concurrency, --repository, --out, --work, --tag,
    --gateway-env, --warmup, --repeats and --poll-interval with the ratio benchmark)."""
    group = parser.add_argument_group(
        "user-level benchmark (--full)",
        "Real photos through the gateway as a client sends them, against the seeds' way "
        "(PyTorch in-process), Triton direct and the in-process ONNX Runtime/OpenVINO floors, "
        "with Triton's and the gateway's memory; bounded by --budget-min.",
    )
    add = group.add_argument
    add(
        "--full",
        action="store_true",
        help="run the user-level benchmark instead of the ratio sweep; report "
        "<out>/<date>-<machine>-realistic.md with PNG plots",
    )
    add(
        "--scenarios",
        type=scenario_list,
        default=list(SCENARIOS),
        help="comma list of upscale, restore, floors, memory (default: these four) and "
        "swap_video (perf.swap_video: a 480p face-swap clip vs FaceFusion's way, its own "
        "report and --budget-min)",
    )
    add(
        "--budget-min",
        type=float,
        help=f"global time budget in minutes; steps that no longer fit are skipped and named "
        f"in the report (default {DEFAULT_BUDGET_MIN:g})",
    )
    add("--tiny", action="store_true", help="tiny synthetic models, small inputs: a smoke run")
    add("--sizes", type=positive_ints, help="upscale photo sides (default 256,512)")
    add(
        "--direct-levels",
        type=positive_ints,
        help="concurrency levels that also run Triton direct (default 1,8)",
    )
    add("--sweep-model", default=SWEEP_MODEL, help="upscaler of the sweep (%(default)s)")
    add(
        "--latency-model",
        default=LATENCY_MODEL,
        help="upscaler timed on one image at concurrency 1 ('none' skips; %(default)s)",
    )
    add("--latency-side", type=int, help="side of that image (default 256)")
    add("--requests-per-client", type=int, help="upscale requests per client thread (1)")
    add("--min-requests", type=int, help="at least this many requests per point (2)")
    add("--restore-requests", type=int, help="group photos restored per path (2)")
    add("--restore-upscale", type=int, default=2, help="/restore's upscale (%(default)s)")
    add("--floor-runs", type=int, help="timed calls per floor after one warm-up (3)")
    add("--floor-batches", type=positive_ints, help="floor batch sizes (1,4)")
    add("--leak-requests", type=int, help="small requests of the memory check (1000)")
    add("--leak-warmup", type=int, help="small requests before its 'before' (100)")
    add(
        "--group-photo",
        choices=("auto", "t1", "built"),
        help="restore input: insightface's t1.jpg (pip download), the built grid, or auto "
        "(t1 when it can be had; default)",
    )


def from_args(args: argparse.Namespace, default_out: Path) -> RealisticOptions:
    defaults = TINY_DEFAULTS if args.tiny else REAL_DEFAULTS

    def pick(name: str) -> Any:
        value = getattr(args, name, None)
        return defaults[name] if value is None else value

    latency = "" if args.latency_model.lower() in ("", "none") else args.latency_model
    return RealisticOptions(
        scenarios=list(args.scenarios),
        budget_s=60.0 * float(pick("budget_min")),
        sizes=pick("sizes"),
        levels=pick("concurrency"),
        direct_levels=pick("direct_levels"),
        sweep_model=args.sweep_model,
        latency_model=latency,
        latency_side=pick("latency_side"),
        requests_per_client=pick("requests_per_client"),
        min_requests=pick("min_requests"),
        restore_requests=pick("restore_requests"),
        restore_upscale=args.restore_upscale,
        floor_runs=pick("floor_runs"),
        floor_batches=pick("floor_batches"),
        leak_requests=pick("leak_requests"),
        leak_warmup=pick("leak_warmup"),
        warmup=pick("warmup"),
        repeats=pick("repeats"),
        group_photo=pick("group_photo"),
        tiny=args.tiny,
        repository=args.repository,
        work=args.work,
        out=args.out or default_out,
        tag=args.tag,
        poll_interval_s=pick("poll_interval_s"),
        gateway_env=dict(args.gateway_env),
    )
