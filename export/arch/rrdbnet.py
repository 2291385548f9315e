"""RRDBNet, the ESRGAN / Real-ESRGAN x4plus generator, re-implemented to match BasicSR.

Module names and registration order follow BasicSR exactly, so the official checkpoints load
with ``strict=True`` and converted ncnn weights can be assigned in module order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Upstream damps every dense block and every RRDB by this factor so that 23 stacked residual
# blocks stay numerically stable; the weights were trained with it, so it is not tunable.
RESIDUAL_SCALE = 0.2
LEAKY_SLOPE = 0.2

# For scale 2 and 1 upstream folds the input into channels before the x4 body, so every scale
# shares the same x4 trunk; the fold factor is the one that brings x4 back down to `scale`.
_UNSHUFFLE_FACTOR = {4: 1, 2: 2, 1: 4}


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3×3 'same' convolution with bias, the only kind of convolution the network uses."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)


class ResidualDenseBlock(nn.Module):
    """Five densely connected convolutions whose output is added back to the input, damped."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = conv3x3(num_feat, num_grow_ch)
        self.conv2 = conv3x3(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = conv3x3(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = conv3x3(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = conv3x3(num_feat + 4 * num_grow_ch, num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), LEAKY_SLOPE)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), LEAKY_SLOPE)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), LEAKY_SLOPE)
        x5: torch.Tensor = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside one more damped residual."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """Maps NCHW float RGB in [0, 1] to an image `scale` times larger (not clipped)."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in _UNSHUFFLE_FACTOR:
            raise ValueError(f"RRDBNet supports scale 4, 2 or 1, not {scale}")
        self.scale = scale
        self.unshuffle = _UNSHUFFLE_FACTOR[scale]
        folded_in_ch = num_in_ch * self.unshuffle * self.unshuffle
        self.conv_first = conv3x3(folded_in_ch, num_feat)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = conv3x3(num_feat, num_feat)
        self.conv_up1 = conv3x3(num_feat, num_feat)
        self.conv_up2 = conv3x3(num_feat, num_feat)
        self.conv_hr = conv3x3(num_feat, num_feat)
        self.conv_last = conv3x3(num_feat, num_out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.fold_input(x)
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.upsample_and_refine(feat, self.conv_up1)
        feat = self.upsample_and_refine(feat, self.conv_up2)
        out: torch.Tensor = self.conv_last(F.leaky_relu(self.conv_hr(feat), LEAKY_SLOPE))
        return out

    def fold_input(self, x: torch.Tensor) -> torch.Tensor:
        """Scale 2 and 1 trade resolution for channels so the shared x4 trunk yields `scale`."""
        if self.unshuffle == 1:
            return x
        # Same channel order as BasicSR's own pixel_unshuffle (c, dy, dx), which the x2 weights
        # were trained with; torch's operator exports to ONNX as Reshape/Transpose.
        return F.pixel_unshuffle(x, self.unshuffle)

    @staticmethod
    def upsample_and_refine(feat: torch.Tensor, conv: nn.Module) -> torch.Tensor:
        """Nearest ×2 then a convolution: upstream's choice, which avoids checkerboard artefacts."""
        upsampled = F.interpolate(feat, scale_factor=2.0, mode="nearest")
        refined: torch.Tensor = conv(upsampled)
        return F.leaky_relu(refined, LEAKY_SLOPE)
