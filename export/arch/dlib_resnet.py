"""dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1), re-written in PyTorch.

The network is the `anet_type` of dlib's examples/dnn_face_recognition_ex.cpp:

    loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

with `alevel4` = 3 × ares<32>, `alevel3` = ares_down<64> + 3 × ares<64>, `alevel2` =
ares_down<128> + 2 × ares<128>, `alevel1` = ares_down<256> + 2 × ares<256>, `alevel0` =
ares_down<256>. A residual block is con3×3(stride) → affine → relu → con3×3 → affine, added to
its input (ares) or to a 2×2/2 average pool of it (ares_down), then relu.

Facts taken from dlib's dnn/layers.h, input.h and cuda/cpu_dlib.cpp that decide the numbers:
- `con`, `max_pool` and `avg_pool` pad by size/2 only when their stride is 1, else not at all;
  output sizes are 1 + (in + 2·pad − window) // stride, the same floor rule as PyTorch.
- `add_prev` of two tensors of different shapes gives the larger of each dimension, the missing
  elements counting as zero (tt::add). Here that happens twice over: an ares_down block widens
  the channels (its shortcut has fewer), and on an even-sized input its stride-2 unpadded
  convolution yields one row and column fewer than the 2×2 pool (8 → 3 vs 4, 4 → 1 vs 2).
  Those pads are fixed numbers for the fixed 150×150 input, so they are computed here, once.
- `affine` in convolution mode is a per-channel scale and shift: a batch norm folded.
- `input_rgb_image_sized` feeds (pixel − channel mean) / 256 with the means stored in the
  model file; the network below does that itself, so it takes RGB values 0..255.
- `loss_metric` does nothing at inference: the descriptor is fc_no_bias's output, unnormalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 150
DESCRIPTOR_SIZE = 128
# dlib's defaults for input_rgb_image_sized (the model file stores its own, which replace them).
DEFAULT_MEANS = (122.782, 117.001, 104.298)
# dlib divides by 256, not 255, after subtracting the means.
INPUT_DIVISOR = 256.0
STEM_CHANNELS = 32
# (width, blocks) per level, input side first: alevel4, alevel3, alevel2, alevel1, alevel0.
# Every level but the first opens with an ares_down block.
V1_STAGES: tuple[tuple[int, int], ...] = ((32, 3), (64, 4), (128, 3), (256, 3), (256, 1))


def dlib_padding(kernel: int, stride: int) -> int:
    """dlib's default padding for con/max_pool/avg_pool: size/2 at stride 1, else none."""
    return kernel // 2 if stride == 1 else 0


def pooled_size(size: int, kernel: int, stride: int) -> int:
    return 1 + (size + 2 * dlib_padding(kernel, stride) - kernel) // stride


def dlib_conv(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels, out_channels, kernel, stride, padding=dlib_padding(kernel, stride), bias=True
    )


class ChannelAffine(nn.Module):
    """dlib's `affine` layer in convolution mode: y = x · scale[c] + shift[c]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)


class RGBInput(nn.Module):
    """dlib's `input_rgb_image_sized`: RGB 0..255 → (x − mean[c]) / 256."""

    mean: torch.Tensor

    def __init__(self, means: Sequence[float] = DEFAULT_MEANS) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(means), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.view(1, -1, 1, 1)) / INPUT_DIVISOR


class ResidualBlock(nn.Module):
    """dlib's `ares` (identity shortcut) or `ares_down` (stride 2, 2×2 average-pool shortcut),
    with dlib's zero-padded add where the two branches differ in shape."""

    def __init__(self, in_channels: int, out_channels: int, down: bool, in_size: int) -> None:
        super().__init__()
        stride = 2 if down else 1
        self.conv1 = dlib_conv(in_channels, out_channels, 3, stride)
        self.affine1 = ChannelAffine(out_channels)
        self.conv2 = dlib_conv(out_channels, out_channels, 3, 1)
        self.affine2 = ChannelAffine(out_channels)
        self.pool = nn.AvgPool2d(2, 2) if down else None
        branch_size = pooled_size(pooled_size(in_size, 3, stride), 3, 1)
        shortcut_size = pooled_size(in_size, 2, 2) if down else in_size
        self.out_size = max(branch_size, shortcut_size)
        self.out_channels = max(in_channels, out_channels)
        self.branch_pad = self._pad(out_channels, branch_size)
        self.shortcut_pad = self._pad(in_channels, shortcut_size)

    def _pad(self, channels: int, size: int) -> tuple[int, ...] | None:
        """F.pad amounts (W, H, then C; at the end of each, as tt::add treats missing elements)."""
        grow, widen = self.out_size - size, self.out_channels - channels
        return (0, grow, 0, grow, 0, widen) if grow or widen else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = x if self.pool is None else self.pool(x)
        if self.branch_pad is not None:
            branch = F.pad(branch, self.branch_pad)
        if self.shortcut_pad is not None:
            shortcut = F.pad(shortcut, self.shortcut_pad)
        return F.relu(branch + shortcut)


class DlibFaceResNet(nn.Module):
    """150×150 RGB face chip, values 0..255, NCHW float → its descriptor (N × descriptor_size)."""

    def __init__(
        self,
        stages: Sequence[tuple[int, int]] = V1_STAGES,
        stem_channels: int = STEM_CHANNELS,
        descriptor_size: int = DESCRIPTOR_SIZE,
        input_size: int = INPUT_SIZE,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.input = RGBInput()
        self.stem_conv = dlib_conv(3, stem_channels, 7, 2)
        self.stem_affine = ChannelAffine(stem_channels)
        self.stem_pool = nn.MaxPool2d(3, 2)
        size = pooled_size(pooled_size(input_size, 7, 2), 3, 2)
        channels = stem_channels
        blocks: list[ResidualBlock] = []
        for level, (width, count) in enumerate(stages):
            for index in range(count):
                block = ResidualBlock(channels, width, level > 0 and index == 0, size)
                blocks.append(block)
                channels, size = block.out_channels, block.out_size
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, descriptor_size, bias=False)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(F.relu(self.stem_affine(self.stem_conv(self.input(face)))))
        x = self.blocks(x)
        descriptor: torch.Tensor = self.fc(x.mean(dim=(2, 3)))
        return descriptor


def dlib_resnet_v1() -> DlibFaceResNet:
    """The published model's shape: 29 convolutions, 5,614,592 parameters."""
    return DlibFaceResNet()


def dlib_resnet_tiny() -> DlibFaceResNet:
    """Every module kind of v1 (identity and down blocks, both zero-padded adds, the channel
    widening, the 128-d descriptor) at 4-16 channels, one block per level."""
    return DlibFaceResNet(stages=((4, 1), (8, 1), (8, 1), (16, 1), (16, 1)), stem_channels=4)
