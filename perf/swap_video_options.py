"""The knobs of the face-swap video benchmark (`python -m perf.swap_video`), their defaults for
a real run and for `--tiny`, and the flags that set them (shared with `perf.benchmark --full
--scenarios swap_video`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPORTS: Final = ROOT / "perf" / "reports"
DEFAULT_WORK: Final = ROOT / "build" / "perf" / "swap-video"

REAL_DEFAULTS: Final[dict[str, Any]] = {
    "seconds": 10.0,  # the clip: 10 s of 480p at 30 fps
    "fps": 30,
    "budget_min": 23.0,
    "memory_seconds": 60.0,
    "memory_fps": 30,
    "memory_share": 0.25,  # of the budget, kept for the memory clip when the clip is chosen
    # Batch 1 and 8 also come from Triton's statistics of the two paths (FaceFusion's way
    # calls batch 1, Facet fills batches of 8), so the dedicated calls stop at 4.
    "batch_sizes": [1, 2, 4],
    "repeats_of_one": 2,
    "rounds": 2,  # each path twice over the clip, in the order F B B F
    "poll_s": 0.5,
}
# --tiny: tiny synthetic swap models beside the real MTCNN, a one-second clip and a short
# memory clip; checks every step end to end in about a minute; its numbers mean nothing.
TINY_DEFAULTS: Final[dict[str, Any]] = {
    **REAL_DEFAULTS,
    "seconds": 1.0,
    "budget_min": 5.0,
    "memory_seconds": 4.0,
    "memory_fps": 5,
    "batch_sizes": [1, 4],
    "repeats_of_one": 2,
    "poll_s": 0.1,
}


@dataclass
class SwapVideoOptions:
    tiny: bool
    seconds: float
    fps: int
    budget_s: float
    memory_seconds: float
    memory_fps: int
    memory_share: float
    memory: bool
    batch_sizes: list[int]
    repeats_of_one: int
    rounds: int
    poll_s: float
    repository: Path | None
    reuse_exports: Path | None
    work: Path
    out: Path
    tag: str | None
    wait_load: float | None
    wait_load_s: float
    sample_interval_s: float = 0.5
    show_progress: bool = True


def positive_ints(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,2,4,8; got {text!r}")
    return sorted(set(values))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "face-swap video (swap_video)",
        "A 480p clip with 1–3 real faces through POST /process/video against FaceFusion's "
        "per-frame, per-face loop over the same Triton; memory over a one-minute clip.",
    )
    add = group.add_argument
    add("--tiny", action="store_true", help="tiny swap models, 1 s clip: a smoke run")
    add("--budget-min", type=float, help="time budget in minutes (default 23; tiny 5)")
    add("--repository", type=Path, help="model repository (default: exported under --work)")
    add("--out", type=Path, help="report folder (default perf/reports; tiny: under --work)")
    add("--work", type=Path, default=DEFAULT_WORK, help="scratch folder (%(default)s)")
    add("--tag", help="machine tag in the report's name (default: from the machine)")
    add("--render", type=Path, help="re-render the report of a saved raw JSON and exit")
    add(
        "--memory-from",
        type=Path,
        help="with --render: the memory section of another saved run (said so in the report)",
    )
    add("--seconds", type=float, help="clip length wanted (default 10; tiny 1)")
    add("--fps", type=int, help="clip frame rate (default 30)")
    add("--memory-seconds", type=float, help="memory clip length (default 60; tiny 4)")
    add("--memory-fps", type=int, help="memory clip's highest frame rate (default 30; tiny 5)")
    add("--memory-share", type=float, help="budget share kept for the memory clip (0.25)")
    add("--no-memory", action="store_true", help="skip the memory clip")
    add(
        "--rounds",
        type=int,
        help="times each path processes the clip, alternating which goes first (default 2)",
    )
    add("--batch-sizes", type=positive_ints, help="swapper batch sizes timed (1,2,4)")
    add(
        "--reuse-exports",
        type=Path,
        help="a folder of models already exported (full variants) to copy in before exporting "
        "the rest; the export's fingerprints decide what is still up to date",
    )
    add(
        "--wait-load",
        type=float,
        help="before measuring, wait until the 1-minute load average is at most this",
    )
    add("--wait-load-min", type=float, default=10.0, help="longest such wait (%(default)s min)")


def from_args(args: argparse.Namespace) -> SwapVideoOptions:
    defaults = TINY_DEFAULTS if args.tiny else REAL_DEFAULTS

    def pick(name: str) -> Any:
        value = getattr(args, name, None)
        return defaults[name] if value is None else value

    work = Path(args.work) if getattr(args, "work", None) else DEFAULT_WORK
    out = args.out or (work / "tiny-report" if args.tiny else DEFAULT_REPORTS)
    return SwapVideoOptions(
        tiny=bool(args.tiny),
        seconds=float(pick("seconds")),
        fps=int(pick("fps")),
        budget_s=60.0 * float(pick("budget_min")),
        memory_seconds=float(pick("memory_seconds")),
        memory_fps=int(pick("memory_fps")),
        memory_share=float(pick("memory_share")),
        memory=not getattr(args, "no_memory", False),
        batch_sizes=list(pick("batch_sizes")),
        repeats_of_one=int(defaults["repeats_of_one"]),
        rounds=int(pick("rounds")),
        poll_s=float(defaults["poll_s"]),
        repository=args.repository,
        reuse_exports=getattr(args, "reuse_exports", None),
        work=work,
        out=Path(out),
        tag=args.tag,
        wait_load=getattr(args, "wait_load", None),
        wait_load_s=60.0 * float(getattr(args, "wait_load_min", 10.0)),
    )


def from_benchmark_args(args: argparse.Namespace) -> SwapVideoOptions:
    """The options `perf.benchmark --full --scenarios swap_video` gives: its --tiny,
    --budget-min, --out and --tag; scratch under its --work; the rest at their defaults (see
    `python -m perf.swap_video --help` for them)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    own = parser.parse_args([])
    own.tiny, own.budget_min, own.tag = args.tiny, args.budget_min, args.tag
    own.work = Path(args.work) / "swap-video"
    own.out = args.out
    return from_args(own)
