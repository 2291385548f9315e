"""The seed's `prepare()` / `restore()` option dictionaries, read into typed options.

Keys the seed's GFPGAN adapter takes and the server does not need (its torch `device`,
`arch`, `channel_multiplier`, `use_parse`, `no_download`, …) are accepted and listed in the
result's `metrics["ignored_options"]`, never silently dropped; values a Facet server cannot
honour (another detector, `aligned` input, no paste-back) raise ValueError naming what it can.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, cast

from clients.gfpp.io.images import ChannelOrder
from clients.gfpp.names import DEFAULT_DETECTOR, DETECTORS, VERSIONS
from clients.gfpp.probe.faces import MIN_EYE_DISTANCE
from clients.gfpp.session import RestoreRequest

BACKGROUND_NAMES: Final = {"realesrgan": True, "none": False, "": False}
PREPARE_KEYS: Final = frozenset(
    {
        "device",
        "version",
        "upscale",
        "detector",
        "face_detector_model",
        "face_detector_score",
        "background",
        "background_enhance",
    }
)
RESTORE_KEYS: Final = PREPARE_KEYS | {
    "weight",
    "only_center_face",
    "aligned",
    "paste_back",
    "eye_dist_threshold",
    "save_faces",
    "return_faces",
    "output_path",
    "input_path",
    "channel_order",
}
MAX_UPSCALE: Final = 4


@dataclass(frozen=True)
class RestoreOptions:
    request: RestoreRequest
    channel_order: ChannelOrder = "bgr"
    save_faces: Path | None = None
    output_path: Path | None = None
    input_path: str | None = None


def prepared_request(cfg: Mapping[str, Any], base: RestoreRequest) -> RestoreRequest:
    """`prepare()`'s options over `base`: the defaults later restorations start from."""
    return replace(
        base,
        version=version_of(cfg.get("version", base.version)),
        upscale=upscale_of(cfg.get("upscale", base.upscale)),
        detector=detector_of(cfg, base.detector),
        min_score=score_of(cfg.get("face_detector_score", base.min_score)),
        background=background_of(cfg, base.background),
    )


def restore_options(cfg: Mapping[str, Any], base: RestoreRequest) -> RestoreOptions:
    refuse_unsupported(cfg)
    save_faces = path_of(cfg.get("save_faces"))
    request = replace(
        prepared_request(cfg, base),
        weight=weight_of(cfg.get("weight", base.weight)),
        only_center_face=bool(cfg.get("only_center_face", base.only_center_face)),
        want_faces=save_faces is not None or bool(cfg.get("return_faces", False)),
    )
    order = str(cfg.get("channel_order", "bgr")).lower()
    if order not in ("bgr", "rgb"):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {order!r}")
    input_path = cfg.get("input_path")
    return RestoreOptions(
        request=request,
        channel_order=cast(ChannelOrder, order),
        save_faces=save_faces,
        output_path=path_of(cfg.get("output_path")),
        input_path=None if input_path is None else str(input_path),
    )


def ignored_keys(cfg: Mapping[str, Any], known: frozenset[str]) -> list[str]:
    return sorted(str(key) for key in cfg if key not in known)


def refuse_unsupported(cfg: Mapping[str, Any]) -> None:
    if cfg.get("aligned"):
        raise ValueError(
            "aligned=True is not supported: a Facet server detects and aligns faces itself; "
            "pass the whole photo"
        )
    if not cfg.get("paste_back", True):
        raise ValueError("paste_back=False is not supported; ask for faces with save_faces")
    threshold = cfg.get("eye_dist_threshold", MIN_EYE_DISTANCE)
    if float(threshold) != MIN_EYE_DISTANCE:
        raise ValueError(f"the server skips faces with eyes closer than {MIN_EYE_DISTANCE:g} px")


def version_of(value: Any) -> str:
    version = str(value)
    if version not in VERSIONS:
        raise ValueError(
            f"GFPGAN version {version!r} is not served by Facet; served: {', '.join(VERSIONS)}"
        )
    return version


def upscale_of(value: Any) -> int:
    upscale = int(value)
    if not 1 <= upscale <= MAX_UPSCALE or upscale != float(value):
        raise ValueError(f"upscale must be a whole number from 1 to {MAX_UPSCALE}, got {value!r}")
    return upscale


def weight_of(value: Any) -> float:
    weight = float(value)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within 0..1, got {value!r}")
    return weight


def score_of(value: Any) -> float:
    score = float(value)
    if not 0.0 < score <= 1.0:
        raise ValueError(f"face_detector_score must be in (0, 1], got {value!r}")
    return score


def detector_of(cfg: Mapping[str, Any], default: str) -> str:
    value = cfg.get("face_detector_model", cfg.get("detector", default))
    detector = str(value or DEFAULT_DETECTOR).lower()
    if detector not in DETECTORS:
        raise ValueError(
            f"face detector {value!r} is not served by Facet; choose one of: "
            f"{', '.join(sorted(DETECTORS))}"
        )
    return detector


def background_of(cfg: Mapping[str, Any], default: bool) -> bool:
    """`background` takes the seed's upsampler name (or None); `background_enhance` the
    gateway's boolean."""
    if "background_enhance" in cfg:
        return bool(cfg["background_enhance"])
    if "background" not in cfg:
        return default
    value = cfg["background"]
    if value is None or isinstance(value, bool):
        return bool(value)
    name = str(value).lower()
    if name not in BACKGROUND_NAMES:
        raise ValueError(f"background {value!r} is not served by Facet; use 'realesrgan' or None")
    return BACKGROUND_NAMES[name]


def path_of(value: Any) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"expected a path, got {type(value).__name__}")
    return Path(value)
