"""What a Facet server serves, under the names the GFPGAN service's Python API (`gfpp`) uses.

The seed's registry knows eight backends and its weight resolver a handful of checkpoint names;
a Facet server runs one GFPGAN (v1.4), two face detectors and two Real-ESRGAN upscalers. The
tables below say which seed name each served model answers to; a name mapped to None is one the
seed knows and Facet does not serve, so it is reported as unavailable instead of unknown.
`tests/unit/test_gfpp_api.py` checks the model names against the committed configs.
"""

from __future__ import annotations

from typing import Final

GFPGAN_MODEL: Final = "gfpgan_v1_4"
# The GFPGAN versions the seed's `version` option takes, and the model serving each.
VERSIONS: Final[dict[str, str]] = {"1.4": GFPGAN_MODEL}
SEED_VERSIONS: Final = ("1", "1.2", "1.3", "1.4")
# The uint8 entry point Triton serves each model behind; its facts cover every step it runs.
RESTORE_ENSEMBLE_PREFIX: Final = "restore_"
UPSCALE_ENSEMBLE_PREFIX: Final = "upscale_"
# The GFPGAN ensemble's tensors: N×512×512×3 uint8 RGB aligned faces in and out.
RESTORER_INPUT: Final = "face"
RESTORER_OUTPUT: Final = "restored_face"
DETECTORS: Final[dict[str, str]] = {"mtcnn": "face_detect_mtcnn", "scrfd": "face_detect_scrfd"}
DEFAULT_DETECTOR: Final = "mtcnn"
DEFAULT_MIN_SCORE: Final = 0.9  # the gateway's face_detector_score default
BACKGROUND_UPSCALER: Final = "realesrgan_x4plus"  # what the gateway's background_enhance runs
UPSCALERS: Final = ("realesrgan_x4plus", "realesr_general_x4v3")

# The seed registry's backends → the Facet model serving it (None: Facet has none).
BACKENDS: Final[dict[str, str | None]] = {
    "gfpgan": GFPGAN_MODEL,
    "codeformer": None,
    "restoreformerpp": None,
    "ensemble": None,
}
# Listed by the seed only with include_experimental=True.
EXPERIMENTAL_BACKENDS: Final[dict[str, str | None]] = {
    "gfpgan-ort": None,
    "diffbir": None,
    "hypir": None,
    "guided": None,
}
BACKEND_ALIASES: Final = {"restoreformer": "restoreformerpp"}

# The seed's weight names (`ensure_weight`) → the Facet model serving those weights.
WEIGHTS: Final[dict[str, str | None]] = {
    "GFPGANv1.4": GFPGAN_MODEL,
    "GFPGANv1.3": None,
    "GFPGANCleanv1-NoCE-C2": None,
    "GFPGANv1": None,
    "RealESRGAN_x4plus": "realesrgan_x4plus",
    "realesr-general-x4v3": "realesr_general_x4v3",
    "CodeFormer": None,
    "RestoreFormer": None,
}
SEED_MODEL_NAMES: Final = {model: name for name, model in WEIGHTS.items() if model is not None}


def entry_point(model: str) -> str:
    """The model clients call for `model`: its uint8 ensemble, or itself (the detectors)."""
    if model in VERSIONS.values():
        return f"{RESTORE_ENSEMBLE_PREFIX}{model}"
    if model in UPSCALERS:
        return f"{UPSCALE_ENSEMBLE_PREFIX}{model}"
    return model


def served_models() -> tuple[str, ...]:
    """Every model this package asks a server about, restorers first."""
    return (*VERSIONS.values(), *DETECTORS.values(), *UPSCALERS)
