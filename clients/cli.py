"""`facet`: Facet's command line. Upscale images straight through Triton (gRPC, tiled on this
machine) or through the REST gateway (a queued job, optionally restoring faces), restore the faces
of a photo with GFPGAN through the gateway, swap a face into a photo or a video (the gateway's
FaceFusion API), list Triton's models or the gateway's processors, follow or cancel jobs.

Exit codes: 0 success, 1 the server failed or could not be reached, 2 bad usage or bad input
(unreadable image, unknown job or model, a request the server refused), 130 interrupted.
Heavy modules are imported inside the commands so that `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from clients.errors import FacetClientError
from triton_core.tiling import DEFAULT_PRE_PAD, DEFAULT_TILE, DEFAULT_TILE_PAD

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from clients.rest import FacetRestClient, Restoration, StatusCallback
    from gateway.imageio import DecodedImage, ImageFormat

PROG: Final = "facet"
GRPC_URL: Final = os.environ.get("FACET_TRITON_URL", "127.0.0.1:8001")
REST_URL: Final = os.environ.get("FACET_GATEWAY_URL", "http://127.0.0.1:8000")
DEFAULT_MODEL: Final = "realesrgan_x4plus"
DEFAULT_TIMEOUT_S: Final = 600.0
FACE_MODEL: Final = "gfpgan_v1_4"
DETECTORS: Final = ("mtcnn", "scrfd")
# A video swap runs as a job of about a second a frame on 2 CPU cores: wait up to an hour.
SWAP_TIMEOUT_S: Final = 3600.0
SCALE_PERCENT_RANGE: Final = (10, 400)  # the FaceFusion API's output_*_scale bounds
SPINNER_FRAMES: Final = "|/-\\"
SPINNER_TICK_S: Final = 0.125
# Local files are not uploads: allow more than the gateway does, but stay clear of a 4×
# output that cannot fit in memory (16 Mpx in → 256 Mpx, ~770 MB of RGB out).
LOCAL_MAX_BYTES: Final = 256 * 1024 * 1024
LOCAL_MAX_PIXELS: Final = 16_000_000
LOCAL_MAX_SIDE: Final = 16384
RESULT_MAX_PIXELS: Final = 89_000_000  # Pillow's own decompression-bomb threshold
SUFFIX_FORMATS: Final[dict[str, ImageFormat]] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
}
FORMAT_SUFFIXES: Final[dict[str, str]] = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
EXIT_OK: Final = 0
EXIT_SERVER: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

DESCRIPTION = """\
Facet's command line: image super-resolution with Real-ESRGAN served by Triton Inference Server,
either straight through Triton (gRPC, tiled on this machine) or through the REST gateway (jobs),
face restoration with GFPGAN v1.4 through the gateway (`facet restore`, or `facet upscale
--face-enhance`), and face swapping in photos and videos through the gateway (`facet swap`).

Exit codes: 0 ok, 1 server error or unreachable, 2 usage or bad input, 130 interrupted.
Environment: FACET_TRITON_URL (default 127.0.0.1:8001) and FACET_GATEWAY_URL (default
http://127.0.0.1:8000) set the default --url of the gRPC and the REST commands."""

TOP_EXAMPLES = """\
examples:
  facet upscale photo.jpg -o photo_x4.png
  facet upscale photo.jpg -o photo_x2.jpg --scale 2 --via rest
  facet upscale group.jpg -o group_x2.png --scale 2 --face-enhance
  facet restore damaged_photo.jpg -o restored.png --upscale 2
  facet swap group.jpg --source face.jpg -o swapped.jpg
  facet swap clip.mp4 --source face.jpg -o clip_swapped.mp4 --enhance
  facet models --url 127.0.0.1:8001
  facet processors
  facet caption photo.jpg
  facet search "two cats on a sofa" --limit 3
  facet status 6b0f4c1e9a5d4e0c8f4f2b7a1d3c5e7f
  facet cancel 6b0f4c1e9a5d4e0c8f4f2b7a1d3c5e7f
  facet <command> --help      (every command explains its options)"""

UPSCALE_DESCRIPTION = f"""\
Upscale one JPEG, PNG or WebP image by 2 or 4 with Real-ESRGAN.

--via grpc (default) talks to Triton directly: the image is cut into tiles here (the gateway's
own tiling code: --tile pixel cores with --tile-pad pixels of context, --pre-pad reflected
pixels at the bottom/right), --batch tiles per request, two requests in flight, stitched here.
The progress bar counts tiles. --shm passes tensors through shared memory (same host only).

--via rest sends the file to the gateway: submit, poll the job (the progress bar shows the
job's progress), download the result. The gateway uses its own model and tile settings, so
--model, --tile, --tile-pad, --pre-pad, --batch and --shm are refused with --via rest.
Ctrl-C while waiting cancels the job. A warning the job carries (e.g. a model running on
synthetic weights) is printed on stderr as "facet: warning: ...".

--face-enhance also restores every face with GFPGAN v1.4 ('{FACE_MODEL}'), the gateway's
face_enhance=true. Only the gateway can do that (the gRPC path runs the upscaler ensemble
alone), so --face-enhance implies --via rest, and --url is then the gateway's URL; with an
explicit --via grpc it is refused. See `facet restore --help` for the weights' licence.

Images are read like the gateway reads uploads (EXIF orientation applied, alpha kept and
resized linearly, grayscale written back as grayscale). The output format follows the
extension of -o (.png, .jpg/.jpeg, .webp); JPEG output drops alpha. Without -o the result goes
next to the input as <name>_upscaled_x<scale>.<ext>, in the input's format (PNG when it has
alpha), as the gateway names results. Local images may have at most {LOCAL_MAX_PIXELS:,}
pixels and {LOCAL_MAX_SIDE} pixels a side (the gateway has its own, smaller limits)."""

UPSCALE_EXAMPLES = """\
examples:
  facet upscale photo.jpg -o photo_x4.png
  facet upscale photo.jpg -o photo_x2.webp --scale 2 --model realesr_general_x4v3
  facet upscale photo.png -o big.png --tile 256 --batch 2 --shm --url 127.0.0.1:8001
  facet upscale photo.jpg -o photo_x2.jpg --scale 2 --via rest --url http://127.0.0.1:8000
  facet upscale group.jpg -o group_x2.png --scale 2 --face-enhance"""

MODELS_DESCRIPTION = """\
List every model in Triton's repository with its version, state (READY when it can serve),
backend and tensors. The upscale_<model> ensembles are what `facet upscale` calls: uint8 RGB
image [N,H,W,3] in, [N,4H,4W,3] out; the float models behind them take FP32 NCHW."""

MODELS_EXAMPLES = """\
examples:
  facet models
  facet models --url triton.example:8001 --json"""

STATUS_DESCRIPTION = """\
Show one gateway job: queued, processing (with progress), completed (with the result URL),
failed (with the reason) or cancelled. Exits 0 whenever the gateway answered; 2 for an
unknown job."""

STATUS_EXAMPLES = """\
examples:
  facet status 6b0f4c1e9a5d4e0c8f4f2b7a1d3c5e7f
  facet status 6b0f4c1e9a5d4e0c8f4f2b7a1d3c5e7f --json --url http://gateway:8000"""

CANCEL_DESCRIPTION = """\
Cancel a queued or running gateway job. A job that already finished cannot be cancelled
(exit 2, with the gateway's reason); an unknown job exits 2 too."""

CANCEL_EXAMPLES = """\
examples:
  facet cancel 6b0f4c1e9a5d4e0c8f4f2b7a1d3c5e7f"""

HEALTH_DESCRIPTION = """\
Show the gateway's health: whether it can serve (Triton reachable, upscale model ready), the
model's weight source and the host's load. Exits 0 when healthy, 1 when not or unreachable."""

HEALTH_EXAMPLES = """\
examples:
  facet health
  facet health --json --url http://gateway:8000"""

RESTORE_DESCRIPTION = f"""\
Restore the faces of one JPEG, PNG or WebP photo through the gateway (POST /restore, then GET
/download): every face is detected (MTCNN by default), aligned, restored with GFPGAN v1.4
('{FACE_MODEL}'), and pasted back into the photo upscaled by --upscale (Lanczos, or Real-ESRGAN
with --background-enhance). A group photo restores every detected face, up to 20.

The gateway does the work inside one request and reports no progress, so a spinner turns
while it works (up to --timeout seconds). Then one line is printed: the file written, its
size, faces detected and restored, and the seconds taken. The output format follows the
extension of -o; without -o the result goes next to the input as <name>_restored.<ext>, as
the gateway names it. Options left out are not sent, so the gateway's defaults apply.

Weights and licences: the official GFPGAN v1.4 weights (GFPGANv1.4.pth: Apache-2.0, with the
StyleGAN2 code's third-party terms, NVIDIA's Source Code License among them) are NOT bundled
with Facet. A server uses them only when its operator installed them (the file in weights/,
or `make models WEIGHTS=official`); otherwise it runs synthetic weights, its "restored" faces
are not meaningful, and its answer carries a warning saying so, printed on stderr as
"facet: warning: ...". The MTCNN detector runs real MIT-licensed weights; SCRFD
(--detector scrfd) is insightface's, for non-commercial research only, and is synthetic
unless its official det_10g.onnx was installed."""

RESTORE_EXAMPLES = """\
examples:
  facet restore damaged_photo.jpg -o restored.png
  facet restore group.jpg -o group_restored.jpg --upscale 1 --weight 0.7
  facet restore portrait.png --only-center-face --background-enhance --url http://gateway:8000
  facet restore photo.webp -o out.png --detector scrfd --detector-score 0.5"""

SWAP_DESCRIPTION = """\
Swap the face of --source into the faces of TARGET, a photo or a video, through the gateway
(the FaceFusion API). TARGET is told apart by its bytes: a JPEG, PNG or WebP goes to POST
/process/image and is answered at once (a spinner turns meanwhile); an MP4, MOV, M4V, MKV, WebM
or AVI goes to POST /process/video as a queued job ("async": true), followed with a progress
bar on the job's progress (Ctrl-C cancels the job). The result is downloaded (GET
/download/{filename}) and then deleted from the server, unless --keep.

Every face is detected (MTCNN by default), aligned, swapped by inswapper_128 with the source
face's ArcFace identity, and pasted back; pixels away from the faces are left as they were.
Each option below is a FaceFusion option, its name in parentheses; options left out are not
sent, so the gateway's defaults apply. Then one line is printed: the file written, what it
holds, faces detected and swapped, and the seconds taken.

Photos keep their format (and transparency); an -o with another image extension (.png, .jpg,
.jpeg, .webp) is converted here. Videos keep their sound and timestamps, and come back as MP4
(H.264), or WebM (VP9) for a WebM target, so -o ends in .mp4 (.webm for a WebM). Without -o the
result goes next to TARGET as <name>_swapped.<ext>.

Weights and licences: inswapper_128, ArcFace w600k_r50 and SCRFD are insightface's models, for
non-commercial research only, and are NOT bundled with Facet. A server uses them only when its
operator installed their official files; otherwise it runs synthetic weights, its swapped faces
are not meaningful, and its answer carries a warning saying so, printed on stderr as
"facet: warning: ...". The same holds for GFPGAN (--enhance)."""

SWAP_EXAMPLES = """\
examples:
  facet swap group.jpg --source face.jpg -o swapped.jpg
  facet swap portrait.png --source face.jpg --selector one --pixel-boost 256 --enhance
  facet swap clip.mp4 --source face.jpg -o clip_swapped.mp4 --fps 24 --scale 50
  facet swap clip.webm --source face.png --detector scrfd --score 0.6 --url http://gateway:8000"""

CAPTION_DESCRIPTION = """\
Caption one image and list the objects in it, with the Image Context Extractor API of the
gateway: the file is uploaded into the server's media root (POST /api/v1/images/upload), where
BLIP writes its caption, NanoDet finds its COCO objects and CLIP and MiniLM embed it, so that
`facet search` finds it afterwards. A synthetic-weights warning is printed when one ran."""

CAPTION_EXAMPLES = """\
examples:
  facet caption photo.jpg
  facet caption photo.jpg --overwrite --json
  facet caption photo.jpg --upload-dir albums/2026 --url http://gateway:8000"""

SEARCH_DESCRIPTION = """\
Search the images the gateway has indexed by text (GET /api/v1/images/?query=...): the query is
compared with each image's caption and objects (MiniLM) and with its picture (CLIP); the README
says how the two scores are combined. Prints score (cosine, higher is nearer), path and caption."""

SEARCH_EXAMPLES = """\
examples:
  facet search "a person in a space suit"
  facet search "playground" --objects person,child --limit 10
  facet search cats --min-score 0.3 --json"""

PROCESSORS_DESCRIPTION = """\
List the gateway's face processors (face_swapper, face_enhancer, frame_enhancer) and whether
each can run now, i.e. every model it calls is ready in Triton, with the warning of one whose
models run on synthetic weights. Exits 0 whenever the gateway answered."""

PROCESSORS_EXAMPLES = """\
examples:
  facet processors
  facet processors --json --url http://gateway:8000"""


class UsageError(Exception):
    """Bad arguments or bad input found after parsing: exit 2 with the message."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped descriptions and examples as written."""


# Argument parsing ------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def unit_float(text: str) -> float:
    """A number in [0, 1]."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def score_float(text: str) -> float:
    """A number in (0, 1]."""
    value = _float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def scale_percent(text: str) -> int:
    value = _int(text)
    low, high = SCALE_PERCENT_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=TOP_EXAMPLES, formatter_class=HelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_upscale(commands)
    add_models(commands)
    add_status(commands)
    add_cancel(commands)
    add_health(commands)
    add_restore(commands)
    add_swap(commands)
    add_processors(commands)
    add_caption(commands)
    add_search(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    epilog: str,
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=HelpFormatter,
    )


def add_upscale(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands, "upscale", "upscale an image ×2 or ×4", UPSCALE_DESCRIPTION, UPSCALE_EXAMPLES
    )
    parser.add_argument("input", type=Path, help="the image to upscale (JPEG, PNG or WebP)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="where to write the result; its extension picks the format "
        "(default: <input>_upscaled_x<scale>.<ext> next to the input)",
    )
    parser.add_argument(
        "--scale", type=int, choices=(2, 4), default=4, help="upscale factor (default: 4)"
    )
    parser.add_argument(
        "--via",
        choices=("grpc", "rest"),
        help="grpc: straight to Triton, tiled here; rest: a job on the gateway (default: grpc, "
        "rest with --face-enhance)",
    )
    parser.add_argument(
        "--url",
        help=f"Triton's gRPC address for --via grpc (default: {GRPC_URL}); the gateway's base "
        f"URL for --via rest (default: {REST_URL})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds: the deadline of each Triton request (grpc), or how long to wait for the "
        f"job (rest) (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--face-enhance",
        action="store_true",
        help="also restore every face with GFPGAN on the gateway; implies --via rest (refused "
        "with --via grpc)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    grpc_only = parser.add_argument_group("gRPC-only options (--via grpc)")
    grpc_only.add_argument(
        "--model",
        help=f"the float model whose upscale_<model> ensemble runs, e.g. realesrgan_x4plus or "
        f"realesr_general_x4v3 (default: {DEFAULT_MODEL})",
    )
    grpc_only.add_argument(
        "--tile",
        type=positive_int,
        help=f"tile core size in input pixels (default: {DEFAULT_TILE})",
    )
    grpc_only.add_argument(
        "--tile-pad",
        type=non_negative_int,
        help=f"context pixels around each tile (default: {DEFAULT_TILE_PAD})",
    )
    grpc_only.add_argument(
        "--pre-pad",
        type=non_negative_int,
        help=f"reflected pixels added bottom/right, cropped after (default: {DEFAULT_PRE_PAD})",
    )
    grpc_only.add_argument(
        "--batch",
        type=positive_int,
        help="tiles per Triton request (default and ceiling: the model config's max_batch_size)",
    )
    grpc_only.add_argument(
        "--shm",
        action="store_true",
        help="pass tensors through system shared memory (client and Triton on one host)",
    )
    parser.set_defaults(handler=run_upscale)


def add_models(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands,
        "models",
        "list Triton's models and readiness",
        MODELS_DESCRIPTION,
        MODELS_EXAMPLES,
    )
    parser.add_argument(
        "--url", default=GRPC_URL, help=f"Triton's gRPC address (default: {GRPC_URL})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run_models)


def _add_rest_options(parser: argparse.ArgumentParser, *, json_output: bool) -> None:
    parser.add_argument(
        "--url", default=REST_URL, help=f"the gateway's base URL (default: {REST_URL})"
    )
    if json_output:
        parser.add_argument("--json", action="store_true", help="print the gateway's JSON answer")


def add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands, "status", "show a gateway job's status", STATUS_DESCRIPTION, STATUS_EXAMPLES
    )
    parser.add_argument("job_id", help="the job_id that submitting the image returned")
    _add_rest_options(parser, json_output=True)
    parser.set_defaults(handler=run_status)


def add_cancel(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands, "cancel", "cancel a gateway job", CANCEL_DESCRIPTION, CANCEL_EXAMPLES
    )
    parser.add_argument("job_id", help="the job to cancel")
    _add_rest_options(parser, json_output=False)
    parser.set_defaults(handler=run_cancel)


def add_health(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands, "health", "show the gateway's health", HEALTH_DESCRIPTION, HEALTH_EXAMPLES
    )
    _add_rest_options(parser, json_output=True)
    parser.set_defaults(handler=run_health)


def add_restore(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands,
        "restore",
        "restore the faces of a photo with GFPGAN (gateway)",
        RESTORE_DESCRIPTION,
        RESTORE_EXAMPLES,
    )
    parser.add_argument(
        "input", type=Path, help="the photo whose faces to restore (JPEG, PNG or WebP)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="where to write the restored photo; its extension picks the format "
        "(default: <input>_restored.<ext> next to the input)",
    )
    parser.add_argument(
        "--version",
        default="1.4",
        help="GFPGAN version; the gateway accepts the installed ones only and lists them when "
        "refusing another (default: 1.4)",
    )
    parser.add_argument(
        "--upscale",
        type=int,
        choices=(1, 2, 3, 4),
        default=2,
        help="final upscale of the whole photo; 1 keeps its size (and, without "
        "--background-enhance, every pixel outside the faces) (default: 2)",
    )
    parser.add_argument(
        "--weight",
        type=unit_float,
        help="blend of restored and original face, 0 (original) to 1 (restored) "
        "(default: the gateway's, 0.5)",
    )
    parser.add_argument(
        "--only-center-face",
        action="store_true",
        help="restore only the face nearest the centre of the photo (default: every face)",
    )
    parser.add_argument(
        "--background-enhance",
        action="store_true",
        help="upscale the rest of the photo with Real-ESRGAN instead of Lanczos",
    )
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        help="face detector: mtcnn (real weights) or scrfd (insightface; non-commercial "
        "research only, synthetic unless installed) (default: the gateway's, mtcnn)",
    )
    parser.add_argument(
        "--detector-score",
        type=score_float,
        help="lowest detection score kept, above 0 and at most 1; lower finds more, and less "
        "certain, faces (default: the gateway's, 0.9)",
    )
    parser.add_argument(
        "--url", default=REST_URL, help=f"the gateway's base URL (default: {REST_URL})"
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for the gateway's answer (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the spinner")
    parser.set_defaults(handler=run_restore)


def add_swap(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands,
        "swap",
        "swap a face into a photo or a video (gateway, FaceFusion API)",
        SWAP_DESCRIPTION,
        SWAP_EXAMPLES,
    )
    parser.add_argument(
        "target",
        type=Path,
        metavar="TARGET",
        help="the photo (JPEG, PNG, WebP) or video (MP4, MOV, M4V, MKV, WebM, AVI) whose faces "
        "are replaced, told apart by its bytes (target)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        required=True,
        metavar="FACE",
        help="a photo of the face to swap in; its largest face is used (source)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="where to write the result (default: <TARGET>_swapped.<ext> next to TARGET)",
    )
    _add_swap_processing(parser)
    _add_swap_detection(parser)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the result on the server after downloading it (it expires there anyway)",
    )
    _add_rest_options(parser, json_output=False)
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=SWAP_TIMEOUT_S,
        help="seconds to wait for a photo's answer, or for a video's job "
        f"(default: {SWAP_TIMEOUT_S:g})",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    parser.set_defaults(handler=run_swap)


def _add_swap_processing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--enhance",
        action="store_true",
        help="then restore the swapped faces with GFPGAN v1.4, blended 80%% (processor "
        "face_enhancer)",
    )
    parser.add_argument(
        "--frame-enhance",
        action="store_true",
        help="then sharpen whole frames with Real-ESRGAN, blended 80%% (processor frame_enhancer)",
    )
    parser.add_argument(
        "--weight",
        type=unit_float,
        help="identity blend, 0 to 1: 0.5 is the source face alone, lower keeps some of the "
        "target's, higher pushes away from it (face_swapper_weight; default: 0.5)",
    )
    parser.add_argument(
        "--selector",
        choices=("many", "one", "reference"),
        help="which faces are swapped: many = every face, one = the largest, reference = those "
        "like the largest face of the photo (a video's first frame) (face_selector_mode; "
        "default: many)",
    )
    parser.add_argument(
        "--pixel-boost",
        type=int,
        choices=(128, 256, 512),
        help="side of the aligned face the swapper works on: 256 or 512 run the 128² model on "
        "4 or 16 sub-crops, for detail at 4× or 16× the work (face_swapper_pixel_boost; "
        "default: 128)",
    )
    parser.add_argument(
        "--scale",
        type=scale_percent,
        metavar="PERCENT",
        help="output size in percent of the target's, 10 to 400 (output_image_scale, "
        "output_video_scale; default: 100)",
    )
    parser.add_argument(
        "--fps",
        type=positive_float,
        metavar="N",
        help="videos only: the output's frame rate; left out, every frame and its timestamp "
        "are kept (output_video_fps)",
    )


def _add_swap_detection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        help="face detector: mtcnn (real weights) or scrfd (insightface; non-commercial "
        "research only, synthetic unless installed) (face_detector_model; default: mtcnn)",
    )
    parser.add_argument(
        "--score",
        type=unit_float,
        help="lowest detection score kept, 0 to 1; lower finds more, and less certain, faces "
        "(face_detector_score; default: 0.5)",
    )


def add_processors(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands,
        "processors",
        "list the gateway's face processors and availability",
        PROCESSORS_DESCRIPTION,
        PROCESSORS_EXAMPLES,
    )
    _add_rest_options(parser, json_output=True)
    parser.set_defaults(handler=run_processors)


def add_caption(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands,
        "caption",
        "caption an image and list its objects (and index it for search)",
        CAPTION_DESCRIPTION,
        CAPTION_EXAMPLES,
    )
    parser.add_argument("input", type=Path, help="the image (JPEG, PNG or WebP)")
    parser.add_argument(
        "--upload-dir",
        default="uploads",
        help="folder inside the server's first media root (default: uploads)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a file of the same name there"
    )
    _add_rest_options(parser, json_output=True)
    parser.set_defaults(handler=run_caption)


def add_search(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _command(
        commands, "search", "search indexed images by text", SEARCH_DESCRIPTION, SEARCH_EXAMPLES
    )
    parser.add_argument("query", help="what to look for, in words")
    parser.add_argument(
        "--limit", type=positive_int, default=5, help="how many results (default: 5)"
    )
    parser.add_argument(
        "--objects", help="only images with any of these objects, comma-separated (e.g. cat,dog)"
    )
    parser.add_argument(
        "--min-score", type=_float, help="leave out results scoring below this (-1 to 1)"
    )
    _add_rest_options(parser, json_output=True)
    parser.set_defaults(handler=run_search)


# Entry point -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (argparse itself exits 2 on bad usage)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except FacetClientError as exc:
        _error(_describe(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _describe(exc: FacetClientError) -> str:
    if exc.retry_after is not None:
        return f"{exc.detail} (the server asks to retry after {exc.retry_after:g} s)"
    return exc.detail


# upscale ---------------------------------------------------------------------------------------


def run_upscale(args: argparse.Namespace) -> int:
    via = args.via or ("rest" if args.face_enhance else "grpc")
    if args.face_enhance and via == "grpc":
        raise UsageError(
            "--face-enhance runs on the gateway only (the gRPC path calls the upscaler ensemble "
            "alone, without face restoration): use --via rest, or leave --via out"
        )
    target = _output_format(args.output)
    if via == "rest":
        grpc_only = [
            flag
            for flag, value in (
                ("--model", args.model),
                ("--tile", args.tile),
                ("--tile-pad", args.tile_pad),
                ("--pre-pad", args.pre_pad),
                ("--batch", args.batch),
            )
            if value is not None
        ]
        if args.shm:
            grpc_only.append("--shm")
        if grpc_only:
            implied = " (--face-enhance runs on the gateway)" if args.via is None else ""
            raise UsageError(
                f"{', '.join(grpc_only)} only apply to --via grpc{implied}; the gateway uses its "
                "own model and tile settings"
            )
        return upscale_rest(args, target)
    return upscale_grpc(args, target)


def _output_format(output: Path | None) -> ImageFormat | None:
    if output is None:
        return None
    fmt = SUFFIX_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the output format from {output.name!r}: end it in .png, .jpg, .jpeg "
            "or .webp"
        )
    if output.is_dir():
        raise UsageError(f"{output} is a directory; give a file name")
    return fmt


def _read_input(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _decode(data: bytes, name: str, *, max_pixels: int = LOCAL_MAX_PIXELS) -> DecodedImage:
    from gateway.errors import FacetError
    from gateway.imageio import decode_image

    try:
        return decode_image(
            data, max_bytes=LOCAL_MAX_BYTES, max_pixels=max_pixels, max_side=LOCAL_MAX_SIDE
        )
    except FacetError as exc:
        raise UsageError(f"{name}: {exc.detail}") from None


def upscale_grpc(args: argparse.Namespace, target: ImageFormat | None) -> int:
    from clients.triton_grpc import FacetTritonClient
    from gateway.imageio import output_format_for
    from triton_core.tiling import plan_tiles

    decoded = _decode(_read_input(args.input), str(args.input))
    fmt = target or output_format_for(decoded, outscale=args.scale)
    output = args.output or _default_output(args.input, args.scale, fmt)
    model = args.model or DEFAULT_MODEL
    tile = args.tile or DEFAULT_TILE
    tile_pad = DEFAULT_TILE_PAD if args.tile_pad is None else args.tile_pad
    tiles = len(plan_tiles(decoded.height, decoded.width, tile, tile_pad))
    started = time.monotonic()
    with (
        FacetTritonClient(
            args.url or GRPC_URL, shared_memory=args.shm, timeout_s=args.timeout
        ) as client,
        _progress_bar(args, total=tiles, unit="tile", desc="upscaling") as bar,
    ):
        upscaled = client.upscale_image(
            _with_alpha(decoded),
            model=model,
            outscale=args.scale,
            tile=tile,
            tile_pad=tile_pad,
            pre_pad=DEFAULT_PRE_PAD if args.pre_pad is None else args.pre_pad,
            batch=args.batch,
            progress=lambda fraction: bar.update(round(fraction * tiles) - bar.n),
        )
    rgb, alpha = upscaled[..., :3], (upscaled[..., 3] if upscaled.shape[2] == 4 else None)
    _write_image(output, rgb, alpha, fmt, grayscale=decoded.was_grayscale)
    seconds = time.monotonic() - started
    print(
        f"{output}: {rgb.shape[1]}×{rgb.shape[0]} {fmt}, ×{args.scale} with {model} via gRPC "
        f"({tiles} tile{'s' if tiles != 1 else ''}, {seconds:.1f} s)"
    )
    return EXIT_OK


def _with_alpha(decoded: DecodedImage) -> npt.NDArray[np.uint8]:
    import numpy as np

    if decoded.alpha is None:
        return decoded.rgb
    return np.dstack([decoded.rgb, decoded.alpha])


def _default_output(source: Path, scale: int, fmt: str) -> Path:
    """Name results as the gateway names its downloads: <stem>_upscaled_x<scale>.<ext>."""
    return source.with_name(f"{source.stem}_upscaled_x{scale}{FORMAT_SUFFIXES[fmt]}")


def _write_image(
    output: Path,
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8] | None,
    fmt: ImageFormat,
    *,
    grayscale: bool,
) -> None:
    from gateway.imageio import encode_image

    if fmt == "JPEG" and alpha is not None:
        _note(f"{PROG}: note: JPEG has no alpha channel; the transparency is dropped")
    try:
        encoded = encode_image(rgb, alpha, fmt, grayscale=grayscale)
    except ValueError as exc:  # e.g. a side too large for JPEG or WebP
        raise UsageError(str(exc)) from None
    _write_atomically(output, encoded)


def _write_atomically(output: Path, data: bytes) -> None:
    """Write beside the target, then rename: a failed run never leaves half an image."""
    partial = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            with partial.open("xb") as file:  # "x": the umask applies, nothing is clobbered
                file.write(data)
            os.replace(partial, output)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


def upscale_rest(args: argparse.Namespace, target: ImageFormat | None) -> int:
    from clients.rest import FacetRestClient

    url = _gateway_url(args.url or REST_URL)
    data = _read_input(args.input)
    started = time.monotonic()
    with FacetRestClient(url) as client:
        accepted = client.submit_upscale(
            data, args.scale, face_enhance=args.face_enhance, filename=args.input.name
        )
        job_id = str(accepted["job_id"])
        _note(f"job {job_id} queued (estimated {accepted.get('estimated_time', '?')})")
        final = _follow_job(
            client,
            job_id,
            args,
            lambda show: client.wait(job_id, timeout_s=args.timeout, progress=show),
        )
        result_url = str(final["result_url"])
        output = _save_result(client, result_url, args, target)
    seconds = time.monotonic() - started
    faces = " with faces restored (GFPGAN)" if args.face_enhance else ""
    print(
        f"{output}: {_describe_file(output)}, ×{args.scale}{faces} via the gateway "
        f"(job {job_id}, {seconds:.1f} s)"
    )
    _warn(final.get("warning"))
    return EXIT_OK


def _gateway_url(url: str) -> str:
    """The gateway's base URL; a bare host:port (Triton's gRPC form) is a usage error."""
    if "://" not in url:
        raise UsageError(f"--url {url!r} is not the gateway's URL; give http://host:port")
    return url


def _warn(warning: object) -> None:
    """A server's warning (e.g. synthetic weights), on stderr and marked as such."""
    if warning:
        _note(f"{PROG}: warning: {warning}")


def _follow_job(
    client: FacetRestClient,
    job_id: str,
    args: argparse.Namespace,
    wait: Callable[[StatusCallback], dict[str, Any]],
) -> dict[str, Any]:
    """Run `wait` with a bar drawn from the job's progress; Ctrl-C cancels the job."""
    try:
        with _progress_bar(args, total=100, unit="%", desc="queued") as bar:

            def show(body: dict[str, Any]) -> None:
                bar.set_description(str(body.get("status", "")), refresh=False)
                bar.update(int(body.get("progress") or 0) - bar.n)

            return wait(show)
    except KeyboardInterrupt:  # the bar is closed by now, so the note reads cleanly
        _cancel_quietly(client, job_id)
        raise


def _cancel_quietly(client: FacetRestClient, job_id: str) -> None:
    try:
        client.cancel(job_id)
        _note(f"cancelled job {job_id}")
    except FacetClientError as exc:
        _note(f"could not cancel job {job_id}: {exc.detail}")


def _save_result(
    client: FacetRestClient, result_url: str, args: argparse.Namespace, target: ImageFormat | None
) -> Path:
    """Download the result; re-encode it when -o asks for another format than the gateway's."""
    with _scratch_beside(args.output or args.input) as scratch:
        downloaded = client.download(result_url, scratch)
        if args.output is None:  # keep the gateway's own file name and format
            output = args.input.with_name(downloaded.name)
            os.replace(downloaded, output)
            return Path(output)
        return _place(downloaded, args.output, target)


@contextmanager
def _scratch_beside(path: Path) -> Iterator[Path]:
    """A temporary folder in `path`'s folder: a download renamed from there never crosses
    file systems, and nothing is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".facet-", dir=path.parent) as scratch:
        yield Path(scratch)


def _place(downloaded: Path, output: Path, target: ImageFormat | None) -> Path:
    """Move a downloaded file to `output`, re-encoded first when `target` names another image
    format than the file's."""
    from gateway.imageio import sniff_format

    if target is not None:
        data = downloaded.read_bytes()
        if sniff_format(data) != target:
            decoded = _decode(data, "the result", max_pixels=RESULT_MAX_PIXELS)
            _write_image(
                output, decoded.rgb, decoded.alpha, target, grayscale=decoded.was_grayscale
            )
            return output
    os.replace(downloaded, output)
    return output


def _describe_file(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return f"{image.width}×{image.height} {image.format}"


class _NullBar:
    """Stands in for tqdm when the bar is off."""

    n = 0

    def update(self, count: int) -> None:
        self.n += count

    def set_description(self, desc: str, refresh: bool = True) -> None:
        pass

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress_bar(
    args: argparse.Namespace,
    *,
    total: int | None,
    unit: str,
    desc: str,
    bar_format: str | None = None,
) -> Any:
    """A tqdm bar on stderr; off with --no-progress and when stderr is not a terminal."""
    if args.no_progress:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        file=sys.stderr,
        disable=None,
        leave=True,
        bar_format=bar_format,
    )


@contextmanager
def _spinner(args: argparse.Namespace, desc: str) -> Iterator[None]:
    """An indeterminate bar (a turning spinner and the time elapsed) for a request that reports
    no progress; drawn like the other bars, and off when they are."""
    with _progress_bar(
        args,
        total=None,
        unit="s",
        desc=f"{desc} {SPINNER_FRAMES[0]}",
        bar_format="{desc} [{elapsed}]",
    ) as bar:
        if getattr(bar, "disable", True):  # --no-progress, or stderr is not a terminal
            yield
            return
        stop = threading.Event()

        def turn() -> None:
            frame = 0
            while not stop.wait(SPINNER_TICK_S):
                frame += 1
                bar.set_description_str(f"{desc} {SPINNER_FRAMES[frame % len(SPINNER_FRAMES)]}")

        ticker = threading.Thread(target=turn, name="facet-spinner", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()


# models, status, cancel, health, restore -------------------------------------------------------


def run_models(args: argparse.Namespace) -> int:
    from clients.triton_grpc import FacetTritonClient

    with FacetTritonClient(args.url, timeout_s=10.0) as client:
        models = client.models()
    if args.json:
        rows = [
            {
                "name": m.name,
                "version": m.version,
                "state": m.state,
                "ready": m.ready,
                "reason": m.reason,
                "platform": m.platform,
                "inputs": [str(spec) for spec in m.inputs],
                "outputs": [str(spec) for spec in m.outputs],
            }
            for m in models
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    table = [("MODEL", "VERSION", "STATE", "BACKEND", "INPUTS", "OUTPUTS")]
    for m in models:
        state = m.state or "UNLOADED"
        if m.reason:
            state = f"{state} ({m.reason})"
        inputs = ", ".join(str(spec) for spec in m.inputs) or "-"
        outputs = ", ".join(str(spec) for spec in m.outputs) or "-"
        table.append((m.name, m.version or "-", state, m.platform or "-", inputs, outputs))
    print(format_table(table))
    ready = sum(m.ready for m in models)
    print(f"\n{ready} of {len(models)} models ready on {args.url}")
    return EXIT_OK


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    from clients.rest import FacetRestClient

    with FacetRestClient(args.url) as client:
        body = client.status(_job_id(args.job_id))
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(f"job {body.get('job_id')}: {body.get('status')} {body.get('progress', 0)}%")
    for label, key in (
        ("file", "original_filename"),
        ("parameters", "parameters"),
        ("model", "model"),
        ("result", "result_url"),
        ("time", "processing_time"),
        ("error", "error"),
        ("warning", "warning"),
    ):
        value = body.get(key)
        if value not in (None, "", {}):
            print(f"  {label}: {json.dumps(value) if isinstance(value, dict) else value}")
    return EXIT_OK


def run_cancel(args: argparse.Namespace) -> int:
    from clients.rest import FacetRestClient

    with FacetRestClient(args.url) as client:
        body = client.cancel(_job_id(args.job_id))
    print(body.get("message", "cancelled"))
    return EXIT_OK


def _job_id(text: str) -> str:
    if not text or "/" in text or text in (".", ".."):
        raise UsageError(f"not a job id: {text!r}")
    return text


def run_health(args: argparse.Namespace) -> int:
    from clients.rest import FacetRestClient

    with FacetRestClient(args.url, max_retries=0) as client:
        body = client.health()
    healthy = body.get("status") == "healthy"
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK if healthy else EXIT_SERVER
    print(f"gateway {args.url}: {body.get('status', 'unknown')} (version {body.get('version')})")
    triton = body.get("triton") or {}
    if triton:
        print(
            f"  triton: live={triton.get('server_live')} ready={triton.get('server_ready')}"
            + (f" error={triton['error']}" if triton.get("error") else "")
        )
    for name, info in (body.get("models") or {}).items():
        if isinstance(info, dict):
            weights = info.get("weights") or "?"
            print(f"  model {name}: ready={info.get('ready')} weights={weights}")
    if body.get("warning"):
        print(f"  warning: {body['warning']}")
    return EXIT_OK if healthy else EXIT_SERVER


# restore ---------------------------------------------------------------------------------------


def run_restore(args: argparse.Namespace) -> int:
    from clients.rest import FacetRestClient

    target = _output_format(args.output)
    url = _gateway_url(args.url)
    data = _read_input(args.input)
    started = time.monotonic()
    with FacetRestClient(url) as client:
        with _spinner(args, "restoring faces"):
            restoration = client.restore(
                data,
                version=args.version,
                upscale=args.upscale,
                weight=args.weight,
                only_center_face=True if args.only_center_face else None,
                background_enhance=True if args.background_enhance else None,
                face_detector_model=args.detector,
                face_detector_score=args.detector_score,
                filename=args.input.name,
                timeout_s=args.timeout,
            )
        output = _save_result(client, restoration.download_url, args, target)
    seconds = time.monotonic() - started
    print(
        f"{output}: {_describe_file(output)}, {_describe_faces(restoration)}, "
        f"×{args.upscale} with GFPGAN v{args.version} via the gateway "
        f"(restoration {restoration.restoration_id}, {seconds:.1f} s)"
    )
    _warn(restoration.warning)
    if restoration.faces_detected == 0:
        _note(f"{PROG}: note: no face was found; a lower --detector-score finds less clear ones")
    return EXIT_OK


def _describe_faces(restoration: Restoration) -> str:
    detected, restored = restoration.faces_detected, restoration.faces_restored
    if detected is None or restored is None:
        return "faces not counted by the server"
    return f"{detected} face{'s' if detected != 1 else ''} detected, {restored} restored"


# swap, processors ------------------------------------------------------------------------------


def run_swap(args: argparse.Namespace) -> int:
    from clients.rest import FacetRestClient

    url = _gateway_url(args.url)
    target, face = _read_input(args.target), _read_input(args.source)
    container = _video_container(target, args.target)
    fields = _swap_fields(args, video=container is not None)
    if container is None:
        fmt = _output_format(args.output)
        with FacetRestClient(url) as client:
            return swap_image(client, args, target, face, fields, fmt)
    _check_video_output(args.output, container)
    with FacetRestClient(url) as client:
        return swap_video(client, args, target, face, fields)


def _video_container(data: bytes, path: Path) -> str | None:
    """None for a photo, else the video's container, both named from the bytes as the gateway
    names them (so nothing is uploaded that it would refuse)."""
    from gateway.errors import FacetError
    from gateway.imageio import sniff_format
    from gateway.video.sniff import HEAD_BYTES, sniff_container

    try:
        sniff_format(data)
        return None
    except FacetError:
        pass
    try:
        return sniff_container(data[:HEAD_BYTES])
    except FacetError as exc:
        raise UsageError(
            f"{path}: not a JPEG, PNG or WebP photo; as a video: {exc.detail}"
        ) from None


def _check_video_output(output: Path | None, container: str) -> None:
    """The gateway writes a WebM target as WebM and every other video as MP4; an -o named
    otherwise would be refused only after the whole video was processed."""
    if output is None:
        return
    suffix = ".webm" if container == "webm" else ".mp4"
    if output.suffix.lower() != suffix:
        raise UsageError(
            f"the gateway returns this video as {suffix[1:].upper()}: end -o in {suffix}"
        )
    if output.is_dir():
        raise UsageError(f"{output} is a directory; give a file name")


def _swap_fields(args: argparse.Namespace, *, video: bool) -> dict[str, Any]:
    """The ProcessRequest fields asked for on the command line, in FaceFusion's names."""
    if args.fps is not None and not video:
        raise UsageError("--fps applies to videos only")
    processors = ["face_swapper"]
    processors += ["face_enhancer"] if args.enhance else []
    processors += ["frame_enhancer"] if args.frame_enhance else []
    fields: dict[str, Any] = {"processors": processors}
    for name, value in (
        ("face_swapper_weight", args.weight),
        ("face_selector_mode", args.selector),
        ("face_swapper_pixel_boost", args.pixel_boost),
        ("output_video_scale" if video else "output_image_scale", args.scale),
        ("output_video_fps", args.fps),
        ("face_detector_model", args.detector),
        ("face_detector_score", args.score),
    ):
        if value is not None:
            fields[name] = value
    return fields


def swap_image(
    client: FacetRestClient,
    args: argparse.Namespace,
    target: bytes,
    face: bytes,
    fields: dict[str, Any],
    fmt: ImageFormat | None,
) -> int:
    started = time.monotonic()
    with _spinner(args, "swapping faces"):
        answer = client.process_image(
            target, face, fields, filename=args.target.name, timeout_s=args.timeout
        )
    output = _save_swapped(client, str(answer["output_path"]), args, fmt)
    print(
        f"{output}: {_describe_file(output)}, {_describe_swaps(answer)} via the gateway "
        f"(job {answer.get('job_id')}, {time.monotonic() - started:.1f} s)"
    )
    _report_swap(answer)
    return EXIT_OK


def swap_video(
    client: FacetRestClient,
    args: argparse.Namespace,
    target: bytes,
    face: bytes,
    fields: dict[str, Any],
) -> int:
    started = time.monotonic()
    with _spinner(args, "uploading"):
        job_id = client.process_video(
            target,
            face,
            fields,
            asynchronous=True,
            filename=args.target.name,
            timeout_s=args.timeout,
        )
    _note(f"job {job_id} queued")
    final = _follow_job(
        client,
        job_id,
        args,
        lambda show: client.wait_for_video(job_id, on_progress=show, timeout_s=args.timeout),
    )
    output = _save_swapped(client, str(final["output_path"]), args, None)
    outcome = final.get("outcome") or {}
    print(
        f"{output}: {_describe_video(outcome)}, {_describe_swaps(outcome)} via the gateway "
        f"(job {job_id}, {time.monotonic() - started:.1f} s)"
    )
    _report_swap({**outcome, "warning": final.get("warning")})
    return EXIT_OK


def _save_swapped(
    client: FacetRestClient, output_path: str, args: argparse.Namespace, fmt: ImageFormat | None
) -> Path:
    """Download the result (a photo converted when -o asks for another format), then delete the
    server's copy unless --keep."""
    with _scratch_beside(args.output or args.target) as scratch:
        downloaded = client.download_output(output_path, scratch)
        default = args.target.with_name(f"{args.target.stem}_swapped{downloaded.suffix}")
        output = _place(downloaded, args.output or default, fmt)
    if not args.keep:
        try:
            client.delete_output(output_path)
        except FacetClientError as exc:
            _note(f"{PROG}: note: the result stays on the server: {exc.detail}")
    return output


def _describe_video(outcome: dict[str, Any]) -> str:
    size, frames = outcome.get("size") or ["?", "?"], outcome.get("frames", "?")
    sound = {"copied": "sound copied", "re-encoded": "sound re-encoded"}
    return (
        f"{size[0]}×{size[1]} {outcome.get('video_codec', '?')}, {frames} frames at "
        f"{outcome.get('fps', '?')} fps, {sound.get(str(outcome.get('audio')), 'no sound')}"
    )


def _describe_swaps(counts: dict[str, Any]) -> str:
    detected, swapped = counts.get("faces_detected"), counts.get("faces_processed")
    if detected is None or swapped is None:
        return "faces not counted by the server"
    return f"{detected} face{'s' if detected != 1 else ''} detected, {swapped} swapped"


def _report_swap(answer: dict[str, Any]) -> None:
    _warn(answer.get("warning"))
    if answer.get("faces_processed") == 0:
        _note(f"{PROG}: note: no face was swapped; a lower --score finds less clear ones")


def run_processors(args: argparse.Namespace) -> int:
    from clients.rest import FacetRestClient

    with FacetRestClient(args.url) as client:
        listed = client.processors()
    if args.json:
        print(json.dumps(listed, indent=2))
        return EXIT_OK
    table = [("PROCESSOR", "AVAILABLE", "WARNING")]
    for processor in listed:
        available = "yes" if processor.get("available") else "no"
        table.append((str(processor.get("name")), available, str(processor.get("warning") or "-")))
    print(format_table(table))
    return EXIT_OK


def run_caption(args: argparse.Namespace) -> int:
    from clients.rest import FacetRestClient

    if not args.input.is_file():
        raise UsageError(f"{args.input}: no such file")
    with FacetRestClient(args.url) as client:
        answer = client.upload_image(
            args.input, overwrite=args.overwrite, upload_dir=args.upload_dir
        )
    if args.json:
        print(json.dumps(answer, indent=2))
        return EXIT_OK
    info = answer.get("image_info") or {}
    print(f"caption: {info.get('caption', '')}")
    print(f"objects: {', '.join(info.get('objects') or []) or '-'}")
    print(f"id:      {answer.get('image_id')}  ({answer.get('file_path')})")
    if answer.get("warning"):
        _error(f"warning: {answer['warning']}")
    return EXIT_OK


def run_search(args: argparse.Namespace) -> int:
    from clients.rest import FacetRestClient

    objects = [name for name in (args.objects or "").split(",") if name.strip()]
    with FacetRestClient(args.url) as client:
        found = client.search_images(
            args.query, limit=args.limit, objects=objects or None, min_score=args.min_score
        )
    if args.json:
        print(json.dumps(found, indent=2))
        return EXIT_OK
    table = [("SCORE", "PATH", "CAPTION", "OBJECTS")]
    for item in found:
        table.append(
            (
                f"{float(item.get('score', 0.0)):.3f}",
                str(item.get("path")),
                str(item.get("caption")),
                ", ".join(item.get("objects") or []) or "-",
            )
        )
    print(format_table(table))
    warnings = {item["warning"] for item in found if item.get("warning")}
    for warning in sorted(warnings):
        _error(f"warning: {warning}")
    return EXIT_OK
