"""Declarative description of one exported model: what it is, where its weights come from,
what crosses its boundary, how it is checked and how Triton batches it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy.typing as npt
import torch
from torch import nn

StateDict = dict[str, torch.Tensor]
Array = npt.NDArray[Any]
WeightKind = Literal["official", "package", "synthetic"]
TritonDType = Literal[
    "TYPE_FP32", "TYPE_FP16", "TYPE_UINT8", "TYPE_INT64", "TYPE_INT32", "TYPE_STRING"
]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output; `dims` excludes the batch axis, -1 marks a dynamic axis."""

    name: str
    dtype: TritonDType
    dims: tuple[int, ...]


@dataclass(frozen=True)
class OfficialWeights:
    """The checkpoint upstream publishes, pinned by hash."""

    filename: str
    url: str
    sha256: str
    licence: str
    # Real-ESRGAN stores the EMA generator under `params_ema` when it has one; a loader that
    # picked the wrong key with strict=False would silently load nothing, so we list them.
    state_keys: tuple[str, ...] = ("params_ema", "params")
    # Reads the state dict out of a file that is not a torch checkpoint (e.g. one initializer
    # of an ONNX graph); None: torch.load, or an ONNX file installed as the model itself.
    convert: Callable[[Path], StateDict] | None = None
    # False: never fetched, only checked where it was placed (e.g. a model hub's snapshot
    # folder); `--weights official` without the file then fails, naming where to put it.
    download: bool = True


@dataclass(frozen=True)
class PackageFiles:
    """Real weights converted from files that a registry package ships."""

    package: str
    licence: str
    locate: Callable[[], tuple[Path, ...]]
    convert: Callable[[tuple[Path, ...]], StateDict]


@dataclass(frozen=True)
class Batching:
    """Triton dynamic batching and instances for the CPU (embedded) configuration."""

    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int
    # Bounded so that overload is answered at once instead of queueing forever.
    max_queue_size: int
    instances: int = 1
    intra_op_threads: int = 2


@dataclass(frozen=True)
class TensorRTProfile:
    """Optimisation profile for TensorRT: a fixed tile keeps engines from rebuilding.

    Shapes include the batch axis first. They apply to every input of the model: the models
    with several inputs (e.g. MiniLM's token ids and attention mask) take them at one shape.
    `opt_shape` is the shape TensorRT tunes its kernels for, so it must be what Triton really
    receives from the gateway; `opt_source` says where that shape comes from (it is recorded
    with the plan). `python -m export` writes each model's TensorRT job from these profiles
    (export/trt_plans.py) and `python3 -m export.trt_build` builds the plans from the jobs."""

    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]
    opt_source: str = ""


def batch_profile(
    item: tuple[int, ...],
    *,
    opt_batch: int,
    max_batch: int,
    source: str,
    item_min: tuple[int, ...] | None = None,
    item_max: tuple[int, ...] | None = None,
) -> TensorRTProfile:
    """The profile of a batched input whose items are `item` at the optimum (and, where an axis
    is dynamic, `item_min` .. `item_max`; default: `item`, i.e. a fixed size): batches from 1
    to `max_batch`, tuned for `opt_batch` items, the count the gateway sends (`source`)."""
    return TensorRTProfile(
        (1, *(item if item_min is None else item_min)),
        (opt_batch, *item),
        (max_batch, *(item if item_max is None else item_max)),
        source,
    )


def face_chunk_profile(
    size: int, batching: Batching, *, ensemble: str, crops: str
) -> TensorRTProfile:
    """A face model's profile: the gateway sends every face of a photo (or of a video window)
    in chunks of its ensemble's max_batch_size, this model's (export/ensembles.py), so a full
    chunk of `size`² crops is the optimum; `crops` says where the gateway cuts them."""
    chunk = batching.max_batch_size
    return batch_profile(
        (3, size, size),
        opt_batch=chunk,
        max_batch=chunk,
        source=f"the gateway's faces: chunks of the {ensemble} ensemble's max_batch_size "
        f"({chunk}) of {size}² {crops}",
    )


@dataclass(frozen=True)
class VectorTolerance:
    """How close a vector output (e.g. a face descriptor) must be to its reference: no element
    further than `max_abs_error`, and the two pointing the same way (cosine ≥ `min_cosine`)."""

    max_abs_error: float
    min_cosine: float


@dataclass(frozen=True)
class ReferenceCheck:
    """A check of the exported model against an independent implementation of the same weights
    (e.g. the original ncnn files), run only for the weight kinds it applies to.

    An image output is compared as 8-bit images by PSNR (`min_psnr_db`; the model is fed the
    photo in [0, 1]); a vector output by `vector` instead (then `min_psnr_db` is None, and the
    model is fed the photo in the spec's `input_range`). `run` takes the HWC uint8 photo that
    `image()` gives. A model that takes no photo (e.g. sentences as token ids) names its own
    sample in `image()`, how the exported model is fed it in `feeds`, and what it is in
    `sample_label`; `run` then takes that sample."""

    name: str
    description: str
    applies_to: tuple[WeightKind, ...]
    min_psnr_db: float | None
    run: Callable[[Array], Array]
    image: Callable[[], Array]
    vector: VectorTolerance | None = None
    # `image()`'s sample → the exported model's inputs by name; None: the photo in the spec's
    # `input_range`, as its first input.
    feeds: Callable[[Array], dict[str, Array]] | None = None
    # How the manifest names `image()`'s sample; None: "astronaut photo W×H".
    sample_label: str | None = None
    # The reference for the weight kind being exported, where it needs the same weights
    # (e.g. transformers' own model loaded with them); None: `run` serves every kind.
    run_for: Callable[[WeightKind], Callable[[Array], Array]] | None = None

    def __post_init__(self) -> None:
        if (self.min_psnr_db is None) == (self.vector is None):
            raise ValueError(f"{self.name}: set exactly one of min_psnr_db and vector")

    def runner(self, kind: WeightKind) -> Callable[[Array], Array]:
        """The reference to run for weights of `kind`."""
        return self.run if self.run_for is None else self.run_for(kind)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable[[], nn.Module]
    # The same architecture at a few thousand parameters, for fast tests of every path.
    build_tiny: Callable[[], nn.Module]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int
    opset_reason: str
    atol: float
    batching: Batching
    sample: Callable[[], Array]
    official: OfficialWeights | None = None
    package: PackageFiles | None = None
    reference: ReferenceCheck | None = None
    tensorrt: TensorRTProfile | None = None
    # Models that must be in the repository for this one to be usable (ensemble steps).
    requires: tuple[str, ...] = ()
    synthetic_licence: str = "n/a (seeded random weights, not a trained model)"
    extra: Mapping[str, str] = field(default_factory=dict)
    # The float range a uint8 photo maps to at the model's input (uint8 0 → lo, 255 → hi); the
    # export and its validation feed the sample photo in this range.
    input_range: tuple[float, float] = (0.0, 1.0)
    # The float range of an image output (its values map back to 0..255); None when the output
    # is not an image. Only image models may be served in BF16 (the check is an image PSNR).
    output_range: tuple[float, float] | None = None
    # The CPU runtime and precision the committed config.pbtxt serves: what the install's
    # measurement (export/cpu_runtime.py) chose on the reference machine, with its numbers
    # beside it. An install on other hardware measures again and serves its own choice.
    cpu_plan: tuple[Literal["onnxruntime", "openvino"], Literal["f32", "bf16"]] = (
        "onnxruntime",
        "f32",
    )
    # Applied to the loaded model in the patch stage, before tracing: tracing fixes that need a
    # wrapper (e.g. keep the one output that is served of a forward that returns several).
    patch: Callable[[nn.Module], nn.Module] | None = None
    # The sample for the tiny variant when its fixed input size differs from the full model's
    # (fixed-size models such as GFPGAN); None: `sample` serves both.
    tiny_sample: Callable[[], Array] | None = None
    # Rescales the generic seeded synthetic weights where they would not exercise the model
    # (e.g. a 14-block U-Net at 0.1× Kaiming scale passes nothing of its input on); applied
    # to synthetic weights only, deterministically.
    synthetic_adjust: Callable[[StateDict], StateDict] | None = None
    # The named inputs of a model that does not take one photo (several inputs, or vectors):
    # (batch size, tiny) → one array per input, in input order, the first `batch` items of one
    # fixed validation set. None: the sample photo in `input_range`.
    feeds: Callable[[int, bool], dict[str, Array]] | None = None
    # An independent computation of the outputs from the loaded module's weights (e.g. numpy),
    # checked against ONNX Runtime besides PyTorch.
    numpy_reference: Callable[[nn.Module, dict[str, Array]], dict[str, Array]] | None = None
    # What `numpy_reference` is, as its manifest check names it (onnxruntime_vs_<this>), e.g.
    # "transformers" when it is the upstream library's own forward on the loaded weights.
    numpy_reference_name: str = "numpy"

    def sample_for(self, tiny: bool) -> Array:
        """The validation photo at the input size of the variant being exported."""
        if tiny and self.tiny_sample is not None:
            return self.tiny_sample()
        return self.sample()

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes: dict[str, dict[int, str]] = {}
        for tensor in (*self.inputs, *self.outputs):
            named = {0: "batch"}
            named.update({i + 1: f"{tensor.name}_d{i}" for i, d in enumerate(tensor.dims) if d < 0})
            axes[tensor.name] = named
        return axes
