"""SRVGGNetCompact, Real-ESRGAN's small VGG-style generator (realesr-general-x4v3, -animevideov3).

Module names follow Real-ESRGAN: one flat `body` list alternating convolution and activation,
so the official checkpoints and converted ncnn weights load with ``strict=True``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ActType = Literal["prelu", "relu", "leakyrelu"]


def make_activation(act_type: ActType, num_feat: int) -> nn.Module:
    """A fresh activation per layer: PReLU slopes are learned separately for each position."""
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU()
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1)
    raise ValueError(f"unknown activation {act_type!r}")


class SRVGGNetCompact(nn.Module):
    """Maps NCHW float RGB in [0, 1] to an image `upscale` times larger (not clipped)."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: ActType = "prelu",
    ) -> None:
        super().__init__()
        self.upscale = upscale
        layers: list[nn.Module] = [
            nn.Conv2d(num_in_ch, num_feat, 3, 1, 1),
            make_activation(act_type, num_feat),
        ]
        for _ in range(num_conv):
            layers.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            layers.append(make_activation(act_type, num_feat))
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        # The network only learns the residual over a nearest-neighbour enlargement of the input.
        base = F.interpolate(x, scale_factor=float(self.upscale), mode="nearest")
        upsampled: torch.Tensor = self.upsampler(out)
        return upsampled + base
