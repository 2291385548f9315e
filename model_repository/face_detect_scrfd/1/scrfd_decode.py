"""Pure-numpy SCRFD pre/post-processing: letterbox, anchor-centre decode, NMS, scale back.

Used by face_detect_scrfd's model.py inside Triton and by the tests outside it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
STRIDES = (8, 16, 32)
ANCHORS = 2
MEAN = 127.5
STD = 128.0


class Detections(NamedTuple):
    boxes: Array  # [K, 4] float32
    scores: Array  # [K] float32
    landmarks: Array  # [K, 5, 2] float32


def letterbox(image: Array, size: int) -> tuple[Array, float]:
    """RGB uint8 [H, W, 3] → network input [1, 3, size, size] float32 ((x − 127.5) / 128),
    resized keeping the ratio (bilinear) and padded with black bottom/right, as insightface's
    SCRFD.detect does (its sizes truncate, its scale is the new height over the old); and the
    scale. Black, not the normalised zero: padding with mid-grey changes what the network sees
    near the border, and so its scores."""
    height, width = image.shape[:2]
    if height / width > 1.0:
        new_h, new_w = size, max(1, int(size / (height / width)))
    else:
        new_w, new_h = size, max(1, int(size * (height / width)))
    scale = new_h / height
    resized = resize_bilinear(image.astype(np.float32), new_h, new_w)
    canvas = np.full((size, size, 3), (0.0 - MEAN) / STD, np.float32)
    canvas[:new_h, :new_w] = (resized - MEAN) / STD
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]), float(scale)


def resize_bilinear(pixels: Array, height: int, width: int) -> Array:
    """Half-pixel-centre bilinear resize of [H, W, C] float pixels."""
    src_h, src_w = pixels.shape[:2]

    def taps(source: int, target: int) -> tuple[Array, Array, Array]:
        centre = (np.arange(target) + 0.5) * (source / target) - 0.5
        centre = np.clip(centre, 0, source - 1)
        low = np.floor(centre).astype(np.int64)
        high = np.minimum(low + 1, source - 1)
        return low, high, (centre - low).astype(np.float32)

    y0, y1, fy = taps(src_h, height)
    x0, x1, fx = taps(src_w, width)
    rows = pixels[y0] * (1 - fy)[:, None, None] + pixels[y1] * fy[:, None, None]
    out: Array = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return out


def anchor_centres(height: int, width: int, stride: int) -> Array:
    """[H·W·2, 2] (x, y) in input pixels; the anchors of a location consecutive, row-major."""
    ys, xs = np.mgrid[: height // stride, : width // stride]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, ANCHORS, axis=0)


def distance2bbox(points: Array, distance: Array) -> Array:
    return np.concatenate([points - distance[:, :2], points + distance[:, 2:]], axis=1)


def distance2kps(points: Array, distance: Array) -> Array:
    return (np.tile(points, (1, distance.shape[1] // 2)) + distance).reshape(-1, 5, 2)


def nms(boxes: Array, scores: Array, threshold: float) -> Array:
    """Greedy IoU NMS (insightface's convention: +1 in widths); indices kept, best first."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return np.asarray(keep, np.int64)


def decode(
    outputs: Sequence[Array],
    input_size: int,
    scale: float,
    score_threshold: float,
    nms_threshold: float,
) -> Detections:
    """The 9 network outputs (scores ×3, boxes ×3, keypoints ×3 for strides 8/16/32) → faces
    in original pixels, sorted by score."""
    if len(outputs) != 3 * len(STRIDES):
        raise ValueError(f"expected {3 * len(STRIDES)} outputs, got {len(outputs)}")
    boxes, scores, points = [], [], []
    for level, stride in enumerate(STRIDES):
        score = np.asarray(outputs[level], np.float32).reshape(-1)
        centres = anchor_centres(input_size, input_size, stride)
        if score.shape[0] != centres.shape[0]:
            raise ValueError(f"stride {stride}: {score.shape[0]} scores, {len(centres)} anchors")
        bbox = np.asarray(outputs[level + 3], np.float32).reshape(-1, 4) * stride
        kps = np.asarray(outputs[level + 6], np.float32).reshape(-1, 10) * stride
        hit = score >= score_threshold
        boxes.append(distance2bbox(centres[hit], bbox[hit]))
        scores.append(score[hit])
        points.append(distance2kps(centres[hit], kps[hit]))
    all_boxes = np.concatenate(boxes)
    all_scores = np.concatenate(scores)
    all_points = np.concatenate(points)
    keep = nms(all_boxes, all_scores, nms_threshold)
    return Detections(
        (all_boxes[keep] / scale).astype(np.float32).reshape(-1, 4),
        all_scores[keep].astype(np.float32),
        (all_points[keep] / scale).astype(np.float32).reshape(-1, 5, 2),
    )
