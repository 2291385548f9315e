"""The re-implemented architectures must match upstream's parameter counts, names and shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from export.arch.rrdbnet import RRDBNet
from export.arch.srvgg import SRVGGNetCompact


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def rrdbnet_keys_by_naming_rule(num_block: int) -> set[str]:
    """The key set of BasicSR's RRDBNet, written out independently of the module code."""
    convs = ["conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    convs += [
        f"body.{block}.rdb{rdb}.conv{conv}"
        for block in range(num_block)
        for rdb in (1, 2, 3)
        for conv in range(1, 6)
    ]
    return {f"{name}.{kind}" for name in convs for kind in ("weight", "bias")}


def basicsr_pixel_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    """BasicSR's own implementation, which the x2 weights were trained with."""
    b, c, h, w = x.shape
    folded = x.view(b, c, h // scale, scale, w // scale, scale)
    return folded.permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale * scale, h // scale, w // scale)


def test_rrdbnet_has_the_official_parameter_count():
    assert count_parameters(RRDBNet()) == 16_697_987


def test_rrdbnet_keys_follow_the_basicsr_naming_rule():
    model = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4)
    assert set(model.state_dict()) == rrdbnet_keys_by_naming_rule(num_block=2)


def test_rrdbnet_dense_block_widths_grow_by_num_grow_ch():
    state = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).state_dict()
    widths = [state[f"body.0.rdb1.conv{i}.weight"].shape[:2] for i in range(1, 6)]
    assert widths == [(4, 8), (4, 12), (4, 16), (4, 20), (8, 24)]


@pytest.mark.parametrize(("scale", "in_channels"), [(4, 3), (2, 12), (1, 48)])
def test_rrdbnet_folds_the_input_into_channels_below_scale_4(scale, in_channels):
    model = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4)
    assert model.conv_first.in_channels == in_channels


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_rrdbnet_output_is_scale_times_the_input(scale):
    model = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 8, 12))
    assert out.shape == (2, 3, 8 * scale, 12 * scale)


def test_rrdbnet_rejects_an_unsupported_scale():
    with pytest.raises(ValueError, match="scale"):
        RRDBNet(scale=3)


@pytest.mark.parametrize("scale", [2, 4])
def test_pixel_unshuffle_keeps_basicsr_channel_order(scale):
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(F.pixel_unshuffle(x, scale), basicsr_pixel_unshuffle(x, scale))


def test_srvgg_parameter_counts_match_the_released_models():
    # Both counts also equal what the shipped animevideov3 ncnn .bin holds for num_conv=16.
    assert count_parameters(SRVGGNetCompact(num_conv=32)) == 1_213_296
    assert count_parameters(SRVGGNetCompact(num_conv=16)) == 621_424


def test_srvgg_keys_alternate_convolution_and_prelu():
    num_conv = 3
    convs = range(0, 2 * num_conv + 3, 2)
    prelus = range(1, 2 * num_conv + 2, 2)
    expected = {f"body.{i}.{kind}" for i in convs for kind in ("weight", "bias")}
    expected |= {f"body.{i}.weight" for i in prelus}
    assert set(SRVGGNetCompact(num_conv=num_conv).state_dict()) == expected


def test_srvgg_last_convolution_emits_upscale_squared_channels_per_colour():
    model = SRVGGNetCompact(num_feat=8, num_conv=1, upscale=4)
    assert model.state_dict()["body.4.weight"].shape == (48, 8, 3, 3)


def test_srvgg_output_is_upscale_times_the_input():
    model = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 8, 12))
    assert out.shape == (2, 3, 32, 48)


def test_srvgg_learns_only_a_residual_over_nearest_upsampling():
    model = SRVGGNetCompact(num_feat=8, num_conv=1, upscale=4).eval()
    last = model.body[-1]
    assert isinstance(last, torch.nn.Conv2d)
    assert last.bias is not None
    x = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        out = model(x)
    assert torch.equal(out, F.interpolate(x, scale_factor=4.0, mode="nearest"))
