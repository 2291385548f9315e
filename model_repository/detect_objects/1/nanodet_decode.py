"""Pure-numpy NanoDet pre/post-processing: resize, distribution decode, per-class NMS, back to
image pixels. Used by detect_objects' model.py inside Triton and by the tests outside it.

The decode is NanoDet's own (legacy v0.x head, the one NanoDet-g was trained with): location
centres at ((col + 0.5)·s, (row + 0.5)·s), each box side the expectation of a softmax over
reg_max + 1 bins times the stride s, boxes clipped to the input; per level the 1000 locations
with the best class score are kept, then every (location, class) pair above the threshold is
a candidate for NMS within its class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
PRE_NMS_LOCATIONS = 1000  # per level, by best class score (NanoDet's nms_pre)


class Detections(NamedTuple):
    boxes: Array  # [K, 4] float32, x1 y1 x2 y2 in image pixels
    scores: Array  # [K] float32, best first
    labels: Array  # [K] int32, class index


def resize_bilinear(pixels: Array, height: int, width: int) -> Array:
    """Half-pixel-centre bilinear resize of [H, W, C] float pixels (OpenCV's INTER_LINEAR,
    what NanoDet's training pipeline resized with)."""
    src_h, src_w = pixels.shape[:2]

    def taps(source: int, target: int) -> tuple[Array, Array, Array]:
        centre = np.clip((np.arange(target) + 0.5) * (source / target) - 0.5, 0, source - 1)
        low = np.floor(centre).astype(np.int64)
        high = np.minimum(low + 1, source - 1)
        return low, high, (centre - low).astype(np.float32)

    y0, y1, fy = taps(src_h, height)
    x0, x1, fx = taps(src_w, width)
    rows = pixels[y0] * (1 - fy)[:, None, None] + pixels[y1] * fy[:, None, None]
    out: Array = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return out


def preprocess(image: Array, size: int) -> tuple[Array, tuple[int, int]]:
    """RGB uint8 [H, W, 3] → the network input [1, 3, size, size] float32 in [0, 1], resized
    without keeping the ratio (as @vladmandic/human feeds this model), and the image's
    (width, height) that the decode maps boxes back to."""
    height, width = image.shape[:2]
    resized = resize_bilinear(image.astype(np.float32), size, size) / np.float32(255.0)
    batch = np.ascontiguousarray(resized.transpose(2, 0, 1)[None].astype(np.float32))
    return batch, (width, height)


def centres(size: int, stride: int) -> Array:
    """[g², 2] (x, y) location centres in input pixels, row-major, g = size / stride."""
    grid = size // stride
    ys, xs = np.mgrid[:grid, :grid]
    points: Array = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32)
    return (points + 0.5) * np.float32(stride)


def distances(bins: Array, reg_max: int, stride: int) -> Array:
    """[N, 4·(reg_max + 1)] logits → [N, 4] side distances (left, top, right, bottom) in input
    pixels: the softmax expectation of each side's bins, times the stride."""
    logits = bins.reshape(-1, 4, reg_max + 1).astype(np.float32)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    expected: Array = weights @ np.arange(reg_max + 1, dtype=np.float32)
    return expected * np.float32(stride)


def nms(boxes: Array, scores: Array, threshold: float) -> Array:
    """Greedy IoU NMS (areas without the +1 of pixel counting); indices kept, best first."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        order = rest[iou <= threshold]
    return np.asarray(keep, np.int64)


def _level_candidates(
    scores: Array, bins: Array, size: int, stride: int, reg_max: int, threshold: float
) -> tuple[Array, Array, Array]:
    """One level's (boxes, scores, labels) above `threshold`, in input pixels."""
    scores = scores.reshape(-1, scores.shape[-1])
    points = centres(size, stride)
    if scores.shape[0] != points.shape[0]:
        raise ValueError(f"stride {stride}: {scores.shape[0]} locations, expected {len(points)}")
    best = np.argsort(-scores.max(axis=1), kind="stable")[:PRE_NMS_LOCATIONS]
    location, label = np.nonzero(scores[best] > threshold)
    location = best[location]
    side = distances(bins.reshape(scores.shape[0], -1)[location], reg_max, stride)
    centre = points[location]
    boxes = np.concatenate([centre - side[:, :2], centre + side[:, 2:]], axis=1)
    return np.clip(boxes, 0.0, float(size)), scores[location, label], label


def decode(
    scores_by_level: Sequence[Array],
    bins_by_level: Sequence[Array],
    strides: Sequence[int],
    size: int,
    reg_max: int,
    image_size: tuple[int, int],
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
) -> Detections:
    """The network's per-level outputs (batch 1) → detections in pixels of an image of
    `image_size` (width, height), clipped to it, best first."""
    found = [
        _level_candidates(s, b, size, stride, reg_max, score_threshold)
        for s, b, stride in zip(scores_by_level, bins_by_level, strides, strict=True)
    ]
    boxes = np.concatenate([f[0] for f in found]).astype(np.float32)
    scores = np.concatenate([f[1] for f in found]).astype(np.float32)
    labels = np.concatenate([f[2] for f in found]).astype(np.int32)
    keep = _per_class_nms(boxes, scores, labels, nms_threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_detections]
    width, height = image_size
    scale = np.asarray([width, height, width, height], np.float32) / np.float32(size)
    bounds = np.asarray([width, height, width, height], np.float32)
    scaled = np.clip(boxes[keep] * scale, 0.0, bounds)
    return Detections(scaled.astype(np.float32).reshape(-1, 4), scores[keep], labels[keep])


def _per_class_nms(boxes: Array, scores: Array, labels: Array, threshold: float) -> Array:
    kept = [
        members[nms(boxes[members], scores[members], threshold)]
        for members in (np.flatnonzero(labels == label) for label in np.unique(labels))
    ]
    return np.concatenate(kept) if kept else np.zeros((0,), np.int64)
