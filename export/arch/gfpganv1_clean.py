"""GFPGANv1Clean, the GFPGAN v1.3 / v1.4 face restorer, re-implemented to match upstream.

A U-Net reads the degraded face; its bottleneck becomes the latent codes of a StyleGAN2
generator ("clean" variant: plain PyTorch ops, no custom CUDA kernels) and its decoder levels
modulate the generator's features through spatial feature transforms (SFT).

Module names, parameter shapes and registration order follow upstream's
``gfpganv1_clean_arch.py`` / ``stylegan2_clean_arch.py``, so ``GFPGANv1.4.pth`` (``params_ema``)
loads with ``strict=True``. Three deliberate differences keep the graph deterministic and
exportable with a dynamic batch axis; none changes the function for given weights and noise:

* The noise injected after every style convolution is always the stored buffer
  ``stylegan_decoder.noises.noise<i>`` (upstream's ``randomize_noise=False`` path). Upstream's
  inference default draws fresh ``normal_()`` noise per call, which cannot be traced; the
  buffers are part of the checkpoint, and are drawn from a fixed seed at construction.
* Modulated convolutions scale the input by the style and the output by the demodulation
  coefficients instead of building per-sample weights for a grouped convolution. The two are
  the same sum in a different order; a grouped convolution would bake the batch size into the
  graph as its ``group`` attribute.
* Only the inference path is kept: no style mixing, truncation or decoder pre-loading.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2
# Upstream multiplies every style convolution's output by √2 ("for conversion" from the
# original StyleGAN2's fused bias-activation gain), and trained the weights with it.
STYLE_CONV_GAIN = 2**0.5
DEMOD_EPS = 1e-8
NORM_EPS = 1e-8
# The noise buffers are drawn from this seed, so two constructions give the same graph.
NOISE_SEED = 0


def channel_widths(narrow: float, channel_multiplier: float) -> dict[int, int]:
    """StyleGAN2's feature width per resolution (the U-Net uses the same rule at half width)."""
    return {
        4: int(512 * narrow),
        8: int(512 * narrow),
        16: int(512 * narrow),
        32: int(512 * narrow),
        64: int(256 * channel_multiplier * narrow),
        128: int(128 * channel_multiplier * narrow),
        256: int(64 * channel_multiplier * narrow),
        512: int(32 * channel_multiplier * narrow),
        1024: int(16 * channel_multiplier * narrow),
    }


def log2_size(out_size: int) -> int:
    log_size = int(math.log(out_size, 2))
    if out_size < 8 or 2**log_size != out_size or out_size > 1024:
        raise ValueError(f"out_size must be a power of two from 8 to 1024, not {out_size}")
    return log_size


def resize2x(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear ×2 or ×½ with half-pixel centres, as upstream's F.interpolate calls."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class NormStyleCode(nn.Module):
    """Scales each style code to unit root-mean-square."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + NORM_EPS)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution (no bias): the style scales the input channels of the
    kernel and, with `demodulate`, each output channel is renormalised to unit expected norm."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
        eps: float = DEMOD_EPS,
    ) -> None:
        super().__init__()
        if sample_mode not in (None, "upsample", "downsample"):
            raise ValueError(f"sample_mode must be None, 'upsample' or 'downsample': {sample_mode}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.sample_mode = sample_mode
        self.eps = eps
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        # Upstream's initialisation: styles start at 1 (identity modulation).
        nn.init.kaiming_normal_(self.modulation.weight, mode="fan_in", nonlinearity="linear")
        nn.init.ones_(self.modulation.bias)
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
            / math.sqrt(in_channels * kernel_size**2)
        )
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        # conv(x, W·s) == conv(x·s, W): the per-sample scale moves from the kernel's input
        # channels onto the input itself, so the convolution keeps one static kernel.
        scale = self.modulation(style)  # (b, c_in)
        if self.sample_mode == "upsample":
            x = resize2x(x, 2.0)
        elif self.sample_mode == "downsample":
            x = resize2x(x, 0.5)
        kernel = self.weight.squeeze(0)  # (c_out, c_in, k, k)
        out = F.conv2d(x * scale[:, :, None, None], kernel, padding=self.padding)
        if self.demodulate:
            # Σ_{i,k} (W[o,i,k]·s[i])² = Σ_i s[i]² · Σ_k W[o,i,k]²: one (b, c_in)·(c_in, c_out)
            # product instead of materialising b modulated kernels.
            energy = scale.pow(2) @ kernel.pow(2).sum(dim=(2, 3)).t()  # (b, c_out)
            out = out * torch.rsqrt(energy + self.eps)[:, :, None, None]
        return out

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, demodulate={self.demodulate}, "
            f"sample_mode={self.sample_mode}"
        )


class StyleConv(nn.Module):
    """Modulated 3×3 convolution, then scaled noise, a bias and a leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        sample_mode: str | None = None,
    ) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels,
            out_channels,
            kernel_size,
            num_style_feat,
            demodulate=demodulate,
            sample_mode=sample_mode,
        )
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.modulated_conv(x, style) * STYLE_CONV_GAIN
        out = out + self.weight * noise  # noise (1, 1, h, w) is shared by the whole batch
        out = out + self.bias
        return F.leaky_relu(out, LEAKY_SLOPE)


class ToRGB(nn.Module):
    """1×1 modulated convolution (not demodulated) to RGB, added to the upsampled skip image."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(
            in_channels, 3, kernel_size=1, num_style_feat=num_style_feat, demodulate=False
        )
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        out: torch.Tensor = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = resize2x(skip, 2.0)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    """The learned 4×4 input of the generator, repeated over the batch."""

    def __init__(self, num_channel: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        # The batch size is read from a tensor rather than passed as an int, so a traced graph
        # keeps it dynamic.
        return self.weight.expand(like.shape[0], -1, -1, -1)


def _noise_buffers(num_layers: int, seed: int) -> list[torch.Tensor]:
    """One (1, 1, r, r) map per style convolution: 4, 8, 8, 16, 16, … as upstream's buffers."""
    generator = torch.Generator().manual_seed(seed)
    buffers = []
    for layer in range(num_layers):
        resolution = 2 ** ((layer + 5) // 2)
        buffers.append(torch.randn(1, 1, resolution, resolution, generator=generator))
    return buffers


class StyleGAN2GeneratorClean(nn.Module):
    """StyleGAN2 generator without custom CUDA ops: constant 4×4 input, two style convolutions
    per resolution up to `out_size`, and a ToRGB skip image at every resolution."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: float = 2,
        narrow: float = 1,
        noise_seed: int = NOISE_SEED,
    ) -> None:
        super().__init__()
        self.num_style_feat = num_style_feat
        layers: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            layers += [nn.Linear(num_style_feat, num_style_feat), nn.LeakyReLU(LEAKY_SLOPE)]
        self.style_mlp = nn.Sequential(*layers)
        for layer in self.style_mlp:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(layer.bias)

        channels = channel_widths(narrow, channel_multiplier)
        self.channels = channels
        self.constant_input = ConstantInput(channels[4], size=4)
        self.style_conv1 = StyleConv(channels[4], channels[4], 3, num_style_feat)
        self.to_rgb1 = ToRGB(channels[4], num_style_feat, upsample=False)

        self.log_size = log2_size(out_size)
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2

        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for index, noise in enumerate(_noise_buffers(self.num_layers, noise_seed)):
            self.noises.register_buffer(f"noise{index}", noise)
        in_channels = channels[4]
        for level in range(3, self.log_size + 1):
            out_channels = channels[2**level]
            self.style_convs.append(
                StyleConv(in_channels, out_channels, 3, num_style_feat, sample_mode="upsample")
            )
            self.style_convs.append(StyleConv(out_channels, out_channels, 3, num_style_feat))
            self.to_rgbs.append(ToRGB(out_channels, num_style_feat, upsample=True))
            in_channels = out_channels

    def stored_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

    def latents(self, styles: torch.Tensor, input_is_latent: bool) -> torch.Tensor:
        """(b, num_style_feat) codes, or (b, num_latent, num_style_feat) per-layer latents →
        (b, num_latent, num_style_feat). Codes go through the style MLP unless already latent."""
        if not input_is_latent:
            styles = self.style_mlp(styles)
        if styles.dim() == 3:
            return styles
        return styles.unsqueeze(1).expand(-1, self.num_latent, -1)

    def modulate(
        self, out: torch.Tensor, level: int, conditions: list[torch.Tensor]
    ) -> torch.Tensor:
        """Hook between the two convolutions of a resolution; the plain generator has none."""
        return out

    def forward(
        self,
        styles: torch.Tensor,
        conditions: list[torch.Tensor] | None = None,
        input_is_latent: bool = False,
        noise: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        latent = self.latents(styles, input_is_latent)
        noises = self.stored_noise() if noise is None else noise
        conds = conditions or []

        out = self.style_conv1(self.constant_input(latent), latent[:, 0], noises[0])
        skip: torch.Tensor = self.to_rgb1(out, latent[:, 1])
        i = 1
        for level, to_rgb in enumerate(self.to_rgbs):
            up, same = self.style_convs[2 * level], self.style_convs[2 * level + 1]
            out = up(out, latent[:, i], noises[i])
            out = self.modulate(out, i, conds)
            out = same(out, latent[:, i + 1], noises[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip


class StyleGAN2GeneratorCSFT(StyleGAN2GeneratorClean):
    """The generator with spatial feature transforms: between the two convolutions of each
    resolution, features become `features · scale + shift` from the U-Net's conditions (on the
    second half of the channels only, with `sft_half`)."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: float = 2,
        narrow: float = 1,
        sft_half: bool = False,
        noise_seed: int = NOISE_SEED,
    ) -> None:
        super().__init__(
            out_size,
            num_style_feat=num_style_feat,
            num_mlp=num_mlp,
            channel_multiplier=channel_multiplier,
            narrow=narrow,
            noise_seed=noise_seed,
        )
        self.sft_half = sft_half

    def modulate(
        self, out: torch.Tensor, level: int, conditions: list[torch.Tensor]
    ) -> torch.Tensor:
        # `level` is the latent index i = 1, 3, 5, …: conditions[i - 1] scales, [i] shifts.
        if level >= len(conditions):  # the conditions may cover fewer resolutions
            return out
        scale, shift = conditions[level - 1], conditions[level]
        if not self.sft_half:
            return out * scale + shift
        half = out.shape[1] // 2  # a Python int: the channel count is static
        return torch.cat([out[:, :half], out[:, half:] * scale + shift], dim=1)


class ResBlock(nn.Module):
    """Residual block that resizes by ×½ ('down') or ×2 ('up') with bilinear interpolation."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "down") -> None:
        super().__init__()
        if mode not in ("down", "up"):
            raise ValueError(f"mode must be 'down' or 'up', not {mode!r}")
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.scale_factor = 0.5 if mode == "down" else 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        out = resize2x(out, self.scale_factor)
        out = F.leaky_relu(self.conv2(out), LEAKY_SLOPE)
        skip: torch.Tensor = self.skip(resize2x(x, self.scale_factor))
        return out + skip


def _sft_branch(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(LEAKY_SLOPE),
        nn.Conv2d(channels, out_channels, 3, 1, 1),
    )


class GFPGANv1Clean(nn.Module):
    """Face in [-1, 1] (N×3×out_size×out_size RGB) → (restored face in about [-1, 1], the
    U-Net's intermediate RGB images when `return_rgb`)."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        channel_multiplier: float = 1,
        decoder_load_path: str | None = None,
        fix_decoder: bool = True,
        num_mlp: int = 8,
        input_is_latent: bool = False,
        different_w: bool = False,
        narrow: float = 1,
        sft_half: bool = False,
        noise_seed: int = NOISE_SEED,
    ) -> None:
        super().__init__()
        if decoder_load_path is not None:
            raise ValueError("decoder_load_path is not supported: load the whole checkpoint")
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        self.out_size = out_size
        self.log_size = log2_size(out_size)
        # The U-Net is half as wide as the generator.
        channels = channel_widths(narrow * 0.5, channel_multiplier)
        decoder_channels = channel_widths(narrow, channel_multiplier)
        if sft_half and any(decoder_channels[2**i] % 2 for i in range(3, self.log_size + 1)):
            raise ValueError("sft_half needs an even generator width at every resolution")

        self.conv_body_first = nn.Conv2d(3, channels[out_size], 1)
        in_channels = channels[out_size]
        self.conv_body_down = nn.ModuleList()
        for i in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(in_channels, channels[2 ** (i - 1)], mode="down"))
            in_channels = channels[2 ** (i - 1)]
        self.final_conv = nn.Conv2d(in_channels, channels[4], 3, 1, 1)

        in_channels = channels[4]
        self.conv_body_up = nn.ModuleList()
        for i in range(3, self.log_size + 1):
            self.conv_body_up.append(ResBlock(in_channels, channels[2**i], mode="up"))
            in_channels = channels[2**i]
        self.toRGB = nn.ModuleList(
            nn.Conv2d(channels[2**i], 3, 1) for i in range(3, self.log_size + 1)
        )

        num_latent = self.log_size * 2 - 2
        style_width = num_latent * num_style_feat if different_w else num_style_feat
        self.final_linear = nn.Linear(channels[4] * 4 * 4, style_width)

        self.stylegan_decoder = StyleGAN2GeneratorCSFT(
            out_size=out_size,
            num_style_feat=num_style_feat,
            num_mlp=num_mlp,
            channel_multiplier=channel_multiplier,
            narrow=narrow,
            sft_half=sft_half,
            noise_seed=noise_seed,
        )
        if fix_decoder:
            for parameter in self.stylegan_decoder.parameters():
                parameter.requires_grad = False

        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for i in range(3, self.log_size + 1):
            width = channels[2**i]
            sft_width = width if sft_half else width * 2
            self.condition_scale.append(_sft_branch(width, sft_width))
            self.condition_shift.append(_sft_branch(width, sft_width))

    def forward(
        self, x: torch.Tensor, return_rgb: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        conditions: list[torch.Tensor] = []
        unet_skips: list[torch.Tensor] = []
        out_rgbs: list[torch.Tensor] = []

        feat = F.leaky_relu(self.conv_body_first(x), LEAKY_SLOPE)
        for down in self.conv_body_down:
            feat = down(feat)
            unet_skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), LEAKY_SLOPE)

        style_code = self.final_linear(feat.flatten(1))
        if self.different_w:
            style_code = style_code.unflatten(1, (-1, self.num_style_feat))

        for skip, up, to_scale, to_shift, to_rgb in zip(
            unet_skips,
            self.conv_body_up,
            self.condition_scale,
            self.condition_shift,
            self.toRGB,
            strict=True,
        ):
            feat = up(feat + skip)
            conditions.append(to_scale(feat))
            conditions.append(to_shift(feat))
            if return_rgb:
                out_rgbs.append(to_rgb(feat))

        image: torch.Tensor = self.stylegan_decoder(
            style_code, conditions, input_is_latent=self.input_is_latent
        )
        return image, out_rgbs


class RestoredFace(nn.Module):
    """What is exported: the restored image alone (upstream returns it with the U-Net's
    intermediate RGB images, which inference discards)."""

    def __init__(self, net: GFPGANv1Clean) -> None:
        super().__init__()
        self.net = net

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        image: torch.Tensor = self.net(face, return_rgb=False)[0]
        return image


def gfpgan_v1_4(
    out_size: int = 512,
    num_style_feat: int = 512,
    channel_multiplier: float = 2,
    num_mlp: int = 8,
    narrow: float = 1,
    noise_seed: int = NOISE_SEED,
) -> GFPGANv1Clean:
    """The configuration GFPGANer builds for v1.3 / v1.4 (arch='clean', channel_multiplier=2);
    the sizes can be shrunk for tests, the structural switches cannot."""
    return GFPGANv1Clean(
        out_size=out_size,
        num_style_feat=num_style_feat,
        channel_multiplier=channel_multiplier,
        decoder_load_path=None,
        fix_decoder=False,
        num_mlp=num_mlp,
        input_is_latent=True,
        different_w=True,
        narrow=narrow,
        sft_half=True,
        noise_seed=noise_seed,
    )
