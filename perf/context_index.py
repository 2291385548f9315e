"""Directory indexing through the gateway (caption + objects + CLIP + MiniLM per image, in
batches) against one image at a time through the same served models, in one run.

    python -m perf.context_index                 # full models (committed repository or exported)
    python -m perf.context_index --tiny          # smoke run on tiny synthetic CLIP and BLIP

Facet's way: POST /api/v1/directories/process on a gateway computing the context of
FACET_CONTEXT_BATCH_IMAGES (8) images per model call. The seed's way: the same images one at a
time (POST /api/v1/images/process, one after another, on a gateway with batches of 1), which is
how the seed's service runs BLIP, CLIP and the sentence transformer in-process. Both on one
Triton, `force_reprocess` so every round runs every model; rounds alternate, and the report
quotes medians. The images are real photos (scikit-image's), resized to a spread of sizes so
no two files are the same bytes. Report: perf/reports/<date>-<machine>-context-index.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
from PIL import Image
from tqdm import tqdm

from perf.machine import describe, load_average
from perf.servers import Gateway, build_repository, installed_models, start_triton
from perf.short_report import machine_line, report_path, save_report

ROOT = Path(__file__).resolve().parents[1]
EXPORTED: Final = ("clip_vit_b32_visual", "clip_vit_b32_textual", "minilm_l6_v2", "nanodet_coco")
SERVED: Final = (
    "clip_vit_b32_visual",
    "clip_vit_b32_textual",
    "embed_clip_text",
    "minilm_l6_v2",
    "embed_text",
    "nanodet_coco",
    "detect_objects",
)
CAPTIONER: Final = ("blip_vision", "blip_decoder_first", "blip_decoder_step", "caption_blip")
PHOTOS: Final = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
)
TARGET_RATIO: Final = 2.0
REQUEST_TIMEOUT_S: Final = 3600.0


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m perf.context_index",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=16, help="photos indexed per run (16)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both ways (2)")
    parser.add_argument("--batch", type=int, default=8, help="images per batch, Facet's way (8)")
    parser.add_argument("--tiny", action="store_true", help="tiny synthetic CLIP and BLIP")
    parser.add_argument(
        "--repository",
        type=Path,
        help="a model repository holding every model (default: the "
        "committed one when `make models` filled it, else one exported under build/perf/)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "perf" / "reports")
    return parser.parse_args(argv)


def write_photos(folder: Path, count: int) -> list[Path]:
    """`count` real photos, each a different size (320–1024 px on the long side)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        name = PHOTOS[index % len(PHOTOS)]
        pixels = np.asarray(getattr(data, name)())  # type: ignore[no-untyped-call]
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        image = Image.fromarray(np.ascontiguousarray(pixels[..., :3]).astype(np.uint8))
        side = 320 + (index * 97) % 705
        scale = side / max(image.size)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        path = folder / f"{index:03d}_{name}.jpg"
        image.save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def repository_for(args: argparse.Namespace, work: Path) -> Path:
    wanted = [*SERVED, *CAPTIONER]
    for candidate in [args.repository] if args.repository else [ROOT / "model_repository"]:
        if candidate is not None and set(wanted) <= set(installed_models(candidate)):
            return candidate
    root = work / ("repository-tiny" if args.tiny else "repository")
    say(f"exporting the context models into {root} (tiny={args.tiny}) …")
    build_repository(
        root,
        ["caption_blip", "embed_clip_text", "clip_vit_b32_visual"],
        tiny=args.tiny,
        weights="synthetic",
    )
    return build_repository(root, ["embed_text", "detect_objects"], tiny=False, weights="auto")


def index_batched(url: str, directory: str) -> float:
    started = time.perf_counter()
    answer = httpx.post(
        f"{url}/api/v1/directories/process",
        json={"directory_path": directory, "force_reprocess": True},
        timeout=REQUEST_TIMEOUT_S,
    )
    answer.raise_for_status()
    body = answer.json()
    if body["failed"]:
        raise RuntimeError(f"batched run failed files: {body['failures']}")
    return time.perf_counter() - started


def index_one_by_one(url: str, paths: list[Path]) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        for path in tqdm(paths, desc="one at a time", unit="image", leave=False):
            answer = client.post(
                "/api/v1/images/process",
                json={"image_path": str(path), "force_reprocess": True},
            )
            answer.raise_for_status()
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = ROOT / "build" / "perf" / "context"
    media = work / "media"
    shutil.rmtree(media, ignore_errors=True)
    paths = write_photos(media / "photos", args.images)
    repository = repository_for(args, work)
    models = [*SERVED, *CAPTIONER]
    triton = start_triton(repository, work / "triton", models)
    media_setting = json.dumps([str(media)])
    batched = Gateway(
        triton.grpc_url,
        repository,
        work / "gateway-batched",
        {
            "FACET_MEDIA_ROOTS": media_setting,
            "FACET_CONTEXT_BATCH_IMAGES": str(args.batch),
            "FACET_TRITON_TIMEOUT_S": "3600",
        },
    )
    serial = Gateway(
        triton.grpc_url,
        repository,
        work / "gateway-serial",
        {
            "FACET_MEDIA_ROOTS": media_setting,
            "FACET_CONTEXT_BATCH_IMAGES": "1",
            "FACET_TRITON_TIMEOUT_S": "3600",
        },
    )
    times: dict[str, list[float]] = {"batched": [], "one_by_one": []}
    try:
        batched.start()
        serial.start()
        say("warm-up: one image each way …")
        index_one_by_one(serial.url, paths[:1])
        index_one_by_one(batched.url, paths[:1])
        for round_index in tqdm(range(args.rounds), desc="rounds", unit="round"):
            order = ("batched", "one_by_one") if round_index % 2 == 0 else ("one_by_one", "batched")
            for way in order:
                seconds = (
                    index_batched(batched.url, "photos")
                    if way == "batched"
                    else index_one_by_one(serial.url, paths)
                )
                times[way].append(seconds)
                say(f"round {round_index + 1}: {way} {seconds:.1f} s for {len(paths)} images")
    finally:
        batched.stop()
        serial.stop()
        triton.stop()
    medians = {way: statistics.median(values) for way, values in times.items()}
    return {
        "images": len(paths),
        "batch": args.batch,
        "tiny": args.tiny,
        "repository": str(repository),
        "seconds": times,
        "median_s": medians,
        "images_per_s": {way: len(paths) / value for way, value in medians.items()},
        "ratio": medians["one_by_one"] / medians["batched"],
        "load_average_after": load_average(),
    }


def write_report(result: dict[str, Any], out: Path) -> Path:
    machine = describe()
    suffix = "-tiny" if result["tiny"] else ""
    day, path = report_path(out, machine, f"context-index{suffix}")
    met = "met" if result["ratio"] >= TARGET_RATIO else "missed"
    lines = [
        f"# Directory indexing: batched vs one image at a time ({day})",
        "",
        machine_line(machine, f"load average at the end {result['load_average_after']}"),
        f"Models: {'tiny' if result['tiny'] else 'full-size'} CLIP and BLIP on synthetic "
        "weights, MiniLM and NanoDet on their real weights, one Triton; two gateways (batches of "
        f"{result['batch']} and of 1).",
        f"{result['images']} real photos (scikit-image), 320–1024 px.",
        "",
        "| way | median s | images/s | runs (s) |",
        "|---|---|---|---|",
    ]
    for way in ("batched", "one_by_one"):
        runs = ", ".join(f"{v:.1f}" for v in result["seconds"][way])
        lines.append(
            f"| {way} | {result['median_s'][way]:.1f} | {result['images_per_s'][way]:.2f} | "
            f"{runs} |"
        )
    lines += [
        "",
        f"**Batched / one at a time: {result['ratio']:.2f}× (target ≥ {TARGET_RATIO:.1f}×: "
        f"{met}).**",
        "",
    ]
    return save_report(path, lines, result)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    path = write_report(result, args.out)
    say(f"ratio {result['ratio']:.2f}×; report {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
