"""GFPGANv1Clean re-implementation: the official checkpoint's key names, shapes and size, a
deterministic traceable forward, modulated convolutions equal to upstream's formulation, and the
uint8 face pre/post graphs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from export.arch.gfpganv1_clean import (
    GFPGANv1Clean,
    ModulatedConv2d,
    RestoredFace,
    StyleGAN2GeneratorCSFT,
    gfpgan_v1_4,
)
from export.graphs import (
    GRAPHS,
    build_face_to_tensor,
    build_tensor_to_face,
    face_to_tensor_reference,
    tensor_to_face_reference,
)
from export.models.gfpgan import (
    GFPGAN_V1_4,
    TINY_FACE_SIZE,
    astronaut_face,
    synthetic_at_init_scale,
)
from export.pipeline import ExportOptions, load_model, model_input
from export.registry import ENSEMBLES, MODELS, expand
from export.validate import open_session
from export.weights import select_state_dict, synthetic_weights

# GFPGANv1Clean(out_size=512, num_style_feat=512, channel_multiplier=2, narrow=1, sft_half=True,
# different_w=True, num_mlp=8), as GFPGANer builds it for v1.3 / v1.4.
FULL_PARAMETERS = 86_444_252
FULL_NOISE_ELEMENTS = sum(4 ** ((layer + 5) // 2) for layer in range(15))  # 699,024
# Size of GFPGANv1.4.pth (sha256 e2cd4703…), as independent projects pin it next to the hash.
# The file is a legacy (non-zip) torch pickle of `params_ema`: fp32 tensor data plus a few
# hundred bytes of pickle per entry.
CHECKPOINT_BYTES = 348_632_874
LEVELS = 7  # 512 → 4 takes 7 halvings
STYLE_CONVS = 2 * LEVELS
MLP_LAYERS = 8


def upstream_keys() -> set[str]:
    """The key set of upstream's GFPGANv1Clean at 512, written from its naming rules alone."""
    keys = {"conv_body_first.weight", "conv_body_first.bias"}
    keys |= {"final_conv.weight", "final_conv.bias", "final_linear.weight", "final_linear.bias"}
    for body in ("conv_body_down", "conv_body_up"):
        for i in range(LEVELS):
            keys |= {
                f"{body}.{i}.{conv}.{p}" for conv in ("conv1", "conv2") for p in ("weight", "bias")
            }
            keys.add(f"{body}.{i}.skip.weight")
    for i in range(LEVELS):
        keys |= {f"toRGB.{i}.weight", f"toRGB.{i}.bias"}
        for branch in ("condition_scale", "condition_shift"):
            keys |= {f"{branch}.{i}.{j}.{p}" for j in (0, 2) for p in ("weight", "bias")}
    decoder = "stylegan_decoder"
    keys |= {
        f"{decoder}.style_mlp.{2 * i + 1}.{p}"
        for i in range(MLP_LAYERS)
        for p in ("weight", "bias")
    }
    keys.add(f"{decoder}.constant_input.weight")
    modulated = (
        "modulated_conv.weight",
        "modulated_conv.modulation.weight",
        "modulated_conv.modulation.bias",
    )
    style_conv = (*modulated, "weight", "bias")
    to_rgb = (*modulated, "bias")
    keys |= {f"{decoder}.style_conv1.{k}" for k in style_conv}
    keys |= {f"{decoder}.to_rgb1.{k}" for k in to_rgb}
    keys |= {f"{decoder}.style_convs.{i}.{k}" for i in range(STYLE_CONVS) for k in style_conv}
    keys |= {f"{decoder}.to_rgbs.{i}.{k}" for i in range(LEVELS) for k in to_rgb}
    keys |= {f"{decoder}.noises.noise{i}" for i in range(STYLE_CONVS + 1)}
    return keys


@pytest.fixture(scope="module")
def full() -> GFPGANv1Clean:
    return gfpgan_v1_4().eval()


@pytest.fixture
def tiny(tmp_path) -> GFPGANv1Clean:
    """The tiny variant with the synthetic weights the export uses (seeded, rescaled)."""
    options = ExportOptions(repository=tmp_path, weights="synthetic", tiny=True)
    model, weights = load_model(GFPGAN_V1_4, "synthetic", options)
    assert isinstance(model, GFPGANv1Clean) and "rescaled" in weights.detail
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_full_model_has_exactly_the_official_checkpoint_keys(full) -> None:
    keys = set(full.state_dict())
    assert keys == upstream_keys()
    assert len(keys) == 285
    assert {k.split(".")[0] for k in keys} == {
        "conv_body_first",
        "conv_body_down",
        "final_conv",
        "final_linear",
        "conv_body_up",
        "toRGB",
        "condition_scale",
        "condition_shift",
        "stylegan_decoder",
    }


def test_full_model_parameter_count_and_size_fit_the_official_checkpoint(full) -> None:
    parameters = count_parameters(full)
    buffers = sum(b.numel() for b in full.buffers())
    print(f"GFPGAN v1.4: {parameters:,} parameters + {buffers:,} noise values")
    assert parameters == FULL_PARAMETERS
    assert buffers == FULL_NOISE_ELEMENTS == 699_024
    # Every stored value is fp32: the tensor data alone must just fit in the file.
    overhead = CHECKPOINT_BYTES - 4 * (parameters + buffers)
    assert 0 < overhead < 300 * len(full.state_dict())


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("conv_body_first.weight", (32, 3, 1, 1)),  # U-Net at half width: 32·2·0.5
        ("conv_body_down.0.conv2.weight", (64, 32, 3, 3)),
        ("conv_body_down.6.skip.weight", (256, 256, 1, 1)),
        ("final_conv.weight", (256, 256, 3, 3)),
        ("final_linear.weight", (16 * 512, 256 * 4 * 4)),  # different_w: 16 latents of 512
        ("conv_body_up.6.conv2.weight", (32, 64, 3, 3)),
        ("toRGB.6.weight", (3, 32, 1, 1)),
        ("condition_scale.6.2.weight", (32, 32, 3, 3)),  # sft_half: half of the 64 channels
        ("condition_shift.0.2.weight", (256, 256, 3, 3)),
        ("stylegan_decoder.style_mlp.15.weight", (512, 512)),
        ("stylegan_decoder.constant_input.weight", (1, 512, 4, 4)),
        ("stylegan_decoder.style_conv1.modulated_conv.weight", (1, 512, 512, 3, 3)),
        ("stylegan_decoder.style_conv1.weight", (1,)),
        ("stylegan_decoder.style_conv1.bias", (1, 512, 1, 1)),
        ("stylegan_decoder.style_convs.8.modulated_conv.weight", (1, 256, 512, 3, 3)),
        ("stylegan_decoder.style_convs.13.modulated_conv.modulation.weight", (64, 512)),
        ("stylegan_decoder.to_rgbs.6.modulated_conv.weight", (1, 3, 64, 1, 1)),
        ("stylegan_decoder.to_rgbs.6.bias", (1, 3, 1, 1)),
        ("stylegan_decoder.noises.noise0", (1, 1, 4, 4)),
        ("stylegan_decoder.noises.noise13", (1, 1, 512, 512)),
        ("stylegan_decoder.noises.noise14", (1, 1, 512, 512)),
    ],
)
def test_full_model_shapes_follow_upstream_channel_rules(full, key, shape) -> None:
    assert tuple(full.state_dict()[key].shape) == shape


def test_a_synthetic_checkpoint_loads_strictly_and_a_missing_key_is_refused(full) -> None:
    checkpoint = {"params_ema": synthetic_weights(full).state_dict}
    assert GFPGAN_V1_4.official is not None
    state = select_state_dict(checkpoint, GFPGAN_V1_4.official.state_keys, "gfpgan_v1_4")
    full.load_state_dict(state, strict=True)
    assert torch.equal(full.final_linear.bias, state["final_linear.bias"])
    del state["stylegan_decoder.noises.noise3"]
    with pytest.raises(RuntimeError, match=r"noises\.noise3"):
        full.load_state_dict(state, strict=True)


def test_tiny_variant_is_small_and_keeps_every_module_kind(tiny) -> None:
    assert count_parameters(tiny) == 30_578
    kinds = {type(m).__name__ for m in tiny.modules()}
    full_kinds = {"ResBlock", "StyleGAN2GeneratorCSFT", "ModulatedConv2d", "StyleConv", "ToRGB"}
    assert full_kinds | {"ConstantInput", "NormStyleCode"} <= kinds
    assert tiny.stylegan_decoder.sft_half and tiny.different_w and tiny.input_is_latent


def test_forward_returns_the_image_and_one_rgb_per_level(tiny) -> None:
    size = TINY_FACE_SIZE
    with torch.no_grad():
        image, rgbs = tiny(torch.rand(2, 3, size, size) * 2 - 1)
        _, none = tiny(torch.rand(1, 3, size, size), return_rgb=False)
    assert image.shape == (2, 3, size, size)
    levels = range(3, TINY_FACE_SIZE.bit_length())  # 8×8 up to the face size
    assert [tuple(r.shape) for r in rgbs] == [(2, 3, 2**i, 2**i) for i in levels]
    assert none == []


def test_stored_noise_makes_the_forward_deterministic_and_is_used(tiny) -> None:
    face = torch.from_numpy(model_input(GFPGAN_V1_4, astronaut_face(TINY_FACE_SIZE)))
    model = RestoredFace(tiny).eval()
    with torch.no_grad():
        first, second = model(face), model(face)
        assert torch.equal(first, second)
        tiny.stylegan_decoder.noises.noise6.add_(1.0)
        assert not torch.allclose(model(face), first)


def test_synthetic_weights_carry_the_face_through_to_the_output(tiny) -> None:
    """Generic 0.1×-Kaiming weights let nothing of the input through 7+7 U-Net blocks; the
    spec's rescaled ones must, at output magnitudes of order 1."""
    face = astronaut_face(TINY_FACE_SIZE)
    pair = np.concatenate([model_input(GFPGAN_V1_4, f) for f in (face, face[::-1].copy())])
    with torch.no_grad():
        out = RestoredFace(tiny)(torch.from_numpy(pair)).numpy()
    assert np.isfinite(out).all() and 0.1 < out.std() < 3.0
    assert np.abs(out[0] - out[1]).mean() > 0.02  # ≈ 2.5 levels of 8 bits on average


def test_synthetic_rescaling_is_deterministic_and_keeps_every_key() -> None:
    model = GFPGAN_V1_4.build_tiny()
    state = synthetic_weights(model).state_dict
    first, second = synthetic_at_init_scale(state), synthetic_at_init_scale(state)
    assert set(first) == set(state)
    assert all(torch.equal(first[k], second[k]) for k in state)
    key = "stylegan_decoder.style_convs.0.modulated_conv.modulation.bias"
    assert torch.allclose(first[key], state[key] + 1)
    noise = first["stylegan_decoder.noises.noise4"]
    assert float(noise.std()) == pytest.approx(1.0, rel=1e-5)


def test_noise_buffers_come_from_a_seed() -> None:
    a, b = GFPGAN_V1_4.build_tiny(), GFPGAN_V1_4.build_tiny()
    other = gfpgan_v1_4(
        out_size=TINY_FACE_SIZE,
        num_style_feat=8,
        narrow=1 / 64,
        channel_multiplier=4,
        num_mlp=2,
        noise_seed=1,
    )
    for name, buffer in a.named_buffers():
        assert torch.equal(buffer, dict(b.named_buffers())[name])
    noise = "stylegan_decoder.noises.noise0"
    assert not torch.equal(a.get_buffer(noise), other.get_buffer(noise))


def test_a_batch_restores_each_face_as_if_alone(tiny) -> None:
    faces = torch.rand(3, 3, TINY_FACE_SIZE, TINY_FACE_SIZE) * 2 - 1
    model = RestoredFace(tiny).eval()
    with torch.no_grad():
        together = model(faces)
        alone = torch.cat([model(faces[i : i + 1]) for i in range(3)])
    # Only the summation order of batched kernels differs (measured ≤ 1e-6 on outputs ~2).
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


def upstream_modulated_conv(
    conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor
) -> torch.Tensor:
    """Upstream's formulation: per-sample modulated kernels through one grouped convolution."""
    b, c, _, _ = x.shape
    weight = conv.weight * conv.modulation(style).view(b, 1, c, 1, 1)
    if conv.demodulate:
        demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + conv.eps)
        weight = weight * demod.view(b, conv.out_channels, 1, 1, 1)
    k = conv.kernel_size
    weight = weight.view(b * conv.out_channels, c, k, k)
    if conv.sample_mode == "upsample":
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    elif conv.sample_mode == "downsample":
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    _, _, h, w = x.shape
    out = F.conv2d(x.view(1, b * c, h, w), weight, padding=conv.padding, groups=b)
    return out.view(b, conv.out_channels, *out.shape[2:4])


@pytest.mark.parametrize(
    ("kernel", "demodulate", "mode"),
    [(3, True, None), (3, True, "upsample"), (3, True, "downsample"), (1, False, None)],
)
def test_modulated_conv_equals_upstreams_grouped_formulation(kernel, demodulate, mode) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, kernel, 7, demodulate=demodulate, sample_mode=mode)
    torch.nn.init.normal_(conv.modulation.bias, mean=1.0, std=0.3)  # upstream inits it to 1
    x, style = torch.randn(3, 6, 8, 8), torch.randn(3, 7)
    with torch.no_grad():
        torch.testing.assert_close(
            conv(x, style), upstream_modulated_conv(conv, x, style), rtol=1e-5, atol=1e-5
        )


def test_sft_half_transforms_only_the_second_half_of_the_channels() -> None:
    generator = StyleGAN2GeneratorCSFT(16, num_style_feat=4, narrow=1 / 64, sft_half=True)
    out = torch.randn(2, 8, 8, 8)
    scale, shift = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    same, sft = torch.split(out, 4, dim=1)
    expected = torch.cat([same, sft * scale + shift], dim=1)
    assert torch.equal(generator.modulate(out, 1, [scale, shift]), expected)
    assert generator.modulate(out, 3, [scale, shift]) is out  # no condition at this level


def test_out_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        gfpgan_v1_4(out_size=96)
    assert math.log2(GFPGAN_V1_4.inputs[0].dims[1]) == 9


def test_spec_io_weights_and_wiring() -> None:
    spec = MODELS["gfpgan_v1_4"]
    assert [(t.name, t.dtype, t.dims) for t in spec.inputs] == [
        ("face", "TYPE_FP32", (3, 512, 512))
    ]
    assert [(t.name, t.dtype, t.dims) for t in spec.outputs] == [
        ("restored", "TYPE_FP32", (3, 512, 512))
    ]
    assert spec.input_range == (-1.0, 1.0) and spec.sample().shape == (512, 512, 3)
    assert spec.sample_for(tiny=True).shape == (TINY_FACE_SIZE, TINY_FACE_SIZE, 3)
    assert spec.official is not None and spec.official.state_keys == ("params_ema",)
    assert spec.official.url.endswith("/v1.3.0/GFPGANv1.4.pth")
    assert "Apache-2.0" in spec.official.licence
    assert [s.name for s in expand(["gfpgan_v1_4"])] == [
        "face_to_tensor",
        "tensor_to_face",
        "gfpgan_v1_4",
    ]
    ensemble = ENSEMBLES["restore_gfpgan_v1_4"]
    assert [(t.name, t.dims) for t in ensemble.inputs] == [("face", (512, 512, 3))]
    assert [(t.name, t.dims) for t in ensemble.outputs] == [("restored_face", (512, 512, 3))]
    assert [s.model for s in ensemble.steps] == ["face_to_tensor", "gfpgan_v1_4", "tensor_to_face"]


# --- the uint8 face graphs -----------------------------------------------------------------


def _run(model: onnx.ModelProto, array: np.ndarray, tmp_path: Path, name: str) -> np.ndarray:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    session = open_session(path)
    return session.run(None, {session.get_inputs()[0].name: array})[0]


def test_face_to_tensor_maps_uint8_rgb_to_minus_one_one_channels_first(tmp_path) -> None:
    faces = np.stack([astronaut_face(32), astronaut_face(32)[:, ::-1]]).copy()
    faces[0, 0, 0] = (0, 255, 128)
    out = _run(build_face_to_tensor(), faces, tmp_path, "pre")
    assert out.shape == (2, 3, 32, 32) and out.dtype == np.float32
    np.testing.assert_array_equal(out, face_to_tensor_reference(faces))
    assert out[0, :2, 0, 0].tolist() == [-1.0, 1.0]
    assert out[0, 2, 0, 0] == pytest.approx(128 / 255 * 2 - 1, abs=1e-7)
    # Channel 0 is the R of RGB: no BGR swap (a swapped face comes out green-blue).
    assert out[1, 0, 5, 7] == face_to_tensor_reference(faces[1:, 5:6, 7:8])[0, 0, 0, 0]


def test_the_export_validates_on_exactly_what_the_ensemble_feeds_the_model() -> None:
    face = astronaut_face(TINY_FACE_SIZE)
    np.testing.assert_array_equal(
        model_input(GFPGAN_V1_4, face), face_to_tensor_reference(face[None])
    )


def _half_levels() -> tuple[np.ndarray, np.ndarray]:
    """Model outputs that land exactly on k + 0.5 after (y + 1)/2 · 255, with their k."""
    k = np.arange(0, 255, dtype=np.float32)
    y = (k + np.float32(0.5)) * np.float32(2 / 255) - np.float32(1)
    scaled = (y + np.float32(1)) / np.float32(2) * np.float32(255)
    exact = scaled == k + np.float32(0.5)
    return y[exact], k[exact].astype(np.int64)


def test_tensor_to_face_clamps_and_rounds_half_to_even(tmp_path) -> None:
    halves, levels = _half_levels()
    assert len(halves) >= 8
    values = np.concatenate([np.array([-1.5, 1.5, -1.0, 1.0, 0.0], np.float32), halves])
    tensor = np.broadcast_to(values, (1, 3, 1, len(values))).astype(np.float32).copy()
    out = _run(build_tensor_to_face(), tensor, tmp_path, "post")
    assert out.shape == (1, 1, len(values), 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, tensor_to_face_reference(tensor))
    assert out[0, 0, :5, 0].tolist() == [0, 255, 0, 255, 128]  # 127.5 → 128 (even)
    expected = np.where(levels % 2 == 0, levels, levels + 1)
    assert out[0, 0, 5:, 0].tolist() == expected.tolist()


def test_face_graphs_are_registered_with_generic_sizes() -> None:
    for name in ("face_to_tensor", "tensor_to_face"):
        spec = GRAPHS[name]
        assert spec.inputs[0].dims in ((-1, -1, 3), (3, -1, -1))
        assert spec.batching.max_batch_size >= GFPGAN_V1_4.batching.max_batch_size
