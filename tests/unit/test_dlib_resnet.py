"""export.arch.dlib_resnet against dlib's published definition: sizes, widths, the input layer
and the zero-padded residual add (dlib's tt::add of tensors of different shapes)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from export.arch.dlib_resnet import (
    ChannelAffine,
    ResidualBlock,
    RGBInput,
    dlib_resnet_tiny,
    dlib_resnet_v1,
)


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def residual_blocks(model: nn.Module) -> list[ResidualBlock]:
    return [m for m in model.modules() if isinstance(m, ResidualBlock)]


def test_v1_has_dlibs_29_convolutions_and_parameter_count() -> None:
    model = dlib_resnet_v1()
    assert count(model, nn.Conv2d) == count(model, ChannelAffine) == 29
    assert sum(p.numel() for p in model.parameters()) == 5_614_592
    assert len(model.blocks) == 14


def test_levels_shrink_as_dlibs_unpadded_stride_2_layers_do() -> None:
    """150 → con 7/2 → 72 → max_pool 3/2 → 35; then each ares_down: branch 1 + (n − 3) // 2,
    pooled shortcut n // 2, the larger of the two."""
    blocks = residual_blocks(dlib_resnet_v1())
    assert [(b.out_channels, b.out_size) for b in blocks] == (
        [(32, 35)] * 3 + [(64, 17)] * 4 + [(128, 8)] * 3 + [(256, 4)] * 3 + [(256, 2)]
    )
    # Where the branch comes out one row short (8 → 3 vs 4, 4 → 1 vs 2), it is zero-padded at
    # the bottom and right; where channels widen, the shortcut gets zero channels at the end.
    pads = [(i, b.branch_pad, b.shortcut_pad) for i, b in enumerate(blocks) if b.pool is not None]
    assert pads == [
        (3, None, (0, 0, 0, 0, 0, 32)),
        (7, None, (0, 0, 0, 0, 0, 64)),
        (10, (0, 1, 0, 1, 0, 0), (0, 0, 0, 0, 0, 128)),
        (13, (0, 1, 0, 1, 0, 0), None),
    ]


def test_the_input_layer_subtracts_the_means_and_divides_by_256() -> None:
    layer = RGBInput((100.0, 50.0, 0.0))
    x = torch.full((1, 3, 2, 2), 228.0)
    assert layer(x)[0, :, 0, 0].tolist() == [0.5, 178 / 256, 228 / 256]


def dlib_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's tt::add(dest, a, b): dest has the larger of each dimension, missing elements 0."""
    shape = tuple(max(x, y) for x, y in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape, dtype=np.float64)
    out[tuple(slice(0, n) for n in a.shape)] += a
    out[tuple(slice(0, n) for n in b.shape)] += b
    return out


def test_a_down_block_adds_its_branches_the_way_dlib_does() -> None:
    torch.manual_seed(0)
    block = ResidualBlock(in_channels=2, out_channels=3, down=True, in_size=4).eval()
    x = torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        branch = block.affine2(block.conv2(torch.relu(block.affine1(block.conv1(x)))))
        shortcut = nn.functional.avg_pool2d(x, 2, 2)
        expected = np.maximum(dlib_add(branch.numpy(), shortcut.numpy()), 0)
        produced = block(x).numpy()
    assert branch.shape == (1, 3, 1, 1) and shortcut.shape == (1, 2, 2, 2)
    np.testing.assert_allclose(produced, expected, rtol=0, atol=1e-6)


def test_an_identity_block_keeps_its_shape() -> None:
    block = ResidualBlock(8, 8, down=False, in_size=35)
    assert block.branch_pad is None and block.shortcut_pad is None and block.pool is None
    assert block(torch.randn(2, 8, 35, 35)).shape == (2, 8, 35, 35)


def test_the_tiny_variant_has_every_module_kind_of_v1() -> None:
    tiny = dlib_resnet_tiny()
    blocks = residual_blocks(tiny)
    assert any(b.pool is None for b in blocks)
    assert any(b.branch_pad is not None for b in blocks)
    assert any(b.shortcut_pad is not None for b in blocks)
    assert {type(m) for m in tiny.modules()} == {type(m) for m in dlib_resnet_v1().modules()}
    with torch.no_grad():
        descriptor = tiny.eval()(torch.rand(2, 3, 150, 150) * 255)
    assert descriptor.shape == (2, 128)
