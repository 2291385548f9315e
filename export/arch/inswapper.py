"""The inswapper_128 face swapper (insightface) and its latent projection, re-implemented so the
synthetic model costs what the published `inswapper_128.onnx` costs.

Written from the published graph's structure (its ops and initializer shapes, as read from the
ONNX file by others who re-implemented it): an encoder of the 128×128 target face (reflect-
padded 7×7 conv 3→128, then 3×3 convs 128→256, 256→512 stride 2, 512→1024 stride 2, each
followed by LeakyReLU 0.2) down to 1024×32×32; six residual style blocks at 1024 channels, each
two 3×3 convs followed by instance norm and a per-channel scale and shift computed from the
512-d source latent (AdaIN; ReLU after the first); a decoder (bilinear ×2 + 3×3 conv 1024→512,
bilinear ×2 + 3×3 conv 512→256, 3×3 conv 256→128, each with LeakyReLU 0.2, then a reflect-
padded 7×7 conv 128→3 and tanh) mapped from [-1, 1] to [0, 1].

The latent is not the ArcFace embedding itself: insightface feeds `normalise(normalise(e) @
emap)`, with `emap` the published graph's last initializer (512×512). `SwapLatent` is that
projection alone, served as its own small model.

Module names are ours: the official checkpoint is itself an ONNX graph, installed as published,
so no state dict is ever loaded into this module from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LATENT_SIZE = 512
FACE_SIZE = 128
LEAKY_SLOPE = 0.2


@dataclass(frozen=True)
class InSwapperConfig:
    # Encoder widths: the 7×7 stem, then one 3×3 conv per entry after it; the last two stride 2.
    encoder: tuple[int, ...] = (128, 256, 512, 1024)
    style_blocks: int = 6
    latent_size: int = LATENT_SIZE


INSWAPPER_128 = InSwapperConfig()
# Every module kind at 128×128 I/O with the real 512-d latent, 37 k parameters: the AdaIN
# Linears (512 → width) dominate, so the style width is 8 and there are two blocks.
INSWAPPER_TINY = InSwapperConfig(encoder=(4, 8, 8, 8), style_blocks=2)


class AdaIN(nn.Module):
    """Instance norm, then a per-channel scale and shift computed from the latent."""

    def __init__(self, channels: int, latent_size: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.scale = nn.Linear(latent_size, channels)
        self.shift = nn.Linear(latent_size, channels)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        scale: torch.Tensor = self.scale(latent)[:, :, None, None]
        shift: torch.Tensor = self.shift(latent)[:, :, None, None]
        normed: torch.Tensor = self.norm(x)
        return normed * scale + shift


class StyleBlock(nn.Module):
    """x + AdaIN(conv(ReLU(AdaIN(conv(x))))): the latent steers every block."""

    def __init__(self, channels: int, latent_size: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.style1 = AdaIN(channels, latent_size)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.style2 = AdaIN(channels, latent_size)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = F.relu(self.style1(self.conv1(x), latent))
        out = self.style2(self.conv2(out), latent)
        return x + out


class _ReflectPadOp(torch.autograd.Function):
    """Reflection padding that exports as one ONNX Pad with constant pads: the stock export
    computes the pads in-graph, and shape inference then loses the spatial size (it gave the
    output dims [batch, 3, batch, ?])."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, pad: int) -> torch.Tensor:
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")

    @staticmethod
    def symbolic(g: Any, x: Any, pad: int) -> Any:
        pads = torch.tensor([0, 0, pad, pad, 0, 0, pad, pad], dtype=torch.int64)
        return g.op("Pad", x, g.op("Constant", value_t=pads), mode_s="reflect")


class ReflectPad2d(nn.Module):
    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded: torch.Tensor = _ReflectPadOp.apply(x, self.pad)  # type: ignore[no-untyped-call]
        return padded


def _reflect_conv7(cin: int, cout: int) -> nn.Sequential:
    # Reflection rather than zero padding keeps a dark frame out of the face's border.
    return nn.Sequential(ReflectPad2d(3), nn.Conv2d(cin, cout, 7))


def _encoder(widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = [_reflect_conv7(3, widths[0]), nn.LeakyReLU(LEAKY_SLOPE)]
    strides = [1] * (len(widths) - 3) + [2, 2]
    for cin, cout, stride in zip(widths[:-1], widths[1:], strides, strict=True):
        layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
    return nn.Sequential(*layers)


def _decoder(widths: tuple[int, ...]) -> nn.Sequential:
    """Mirror of the encoder: ×2 before each of the two convs that undo the strides."""
    reverse = widths[::-1]
    layers: list[nn.Module] = []
    for index, (cin, cout) in enumerate(pairwise(reverse)):
        if index < 2:
            layers.append(nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False))
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
    layers += [_reflect_conv7(widths[0], 3), nn.Tanh()]
    return nn.Sequential(*layers)


class InSwapper(nn.Module):
    """(target N×3×128×128 RGB in [0, 1], source latent N×512) → swapped face N×3×128×128
    in [0, 1]."""

    def __init__(self, config: InSwapperConfig = INSWAPPER_128) -> None:
        super().__init__()
        if len(config.encoder) < 3:
            raise ValueError("the encoder needs a stem and two strided convolutions")
        self.encoder = _encoder(config.encoder)
        width = config.encoder[-1]
        self.style_blocks = nn.ModuleList(
            StyleBlock(width, config.latent_size) for _ in range(config.style_blocks)
        )
        self.decoder = _decoder(config.encoder)

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        x: torch.Tensor = self.encoder(target)
        for block in self.style_blocks:
            x = block(x, source)
        out: torch.Tensor = self.decoder(x)
        return (out + 1.0) / 2.0


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    norm: torch.Tensor = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    normalised: torch.Tensor = x / norm
    return normalised


class SwapLatent(nn.Module):
    """ArcFace embedding (N×512, any norm) → inswapper source latent (N×512, unit norm).

    `emap` is a buffer, not a parameter: a fixed projection read from the swapper's graph (or
    drawn for synthetic weights), never trained here. The model is already small (1 MiB), so
    its tiny variant is the same module."""

    emap: torch.Tensor

    def __init__(self, size: int = LATENT_SIZE) -> None:
        super().__init__()
        self.register_buffer("emap", torch.eye(size))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return l2_normalise(l2_normalise(embedding) @ self.emap)


def inswapper_128() -> InSwapper:
    return InSwapper(INSWAPPER_128)


def inswapper_tiny() -> InSwapper:
    return InSwapper(INSWAPPER_TINY)
