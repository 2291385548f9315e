"""SCRFD (Guo et al. 2021, insightface) as exported for inference: ResNetV1e backbone, PAFPN neck
and the SCRFD head, with the output layout of insightface's `det_10g.onnx`.

Written from the published config `detection/scrfd/configs/scrfd/scrfd_10g_bnkps.py` (the model
buffalo_l ships as det_10g.onnx): BasicBlock stages (3, 4, 2, 3) with planes (56, 88, 88, 224)
after a deep stem (three 3×3 convs) and a 3×3/2 max pool; stage downsampling by average pooling
then a 1×1 conv ("avg_down"); PAFPN on stages 2–4 with 56 channels, no norm, no activation; a
head per stride (strides not shared) of three 3×3 conv-BN-ReLU (80 channels) shared by the
classification, box and keypoint branches, a learnt scale on the boxes, 2 anchors per location.

Outputs, per stride 8, 16, 32 in that order: scores (sigmoid) [N·H·W·2, 1], then box distances
[N·H·W·2, 4] (left, top, right, bottom, in stride units), then keypoint offsets [N·H·W·2, 10]
(5 × (dx, dy), stride units); anchors of one location are consecutive, locations row-major.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

STRIDES = (8, 16, 32)
ANCHORS = 2
KEYPOINTS = 5


@dataclass(frozen=True)
class ScrfdConfig:
    stem_channels: int = 56
    stage_blocks: tuple[int, ...] = (3, 4, 2, 3)
    stage_planes: tuple[int, ...] = (56, 88, 88, 224)
    neck_channels: int = 56
    head_channels: int = 80
    head_convs: int = 3


SCRFD_10G = ScrfdConfig()
# The same structure at a few thousand parameters, for tests.
SCRFD_TINY = ScrfdConfig(
    stem_channels=8,
    stage_blocks=(1, 1, 1, 1),
    stage_planes=(8, 8, 8, 8),
    neck_channels=8,
    head_channels=8,
    head_convs=1,
)


def _conv_bn(cin: int, cout: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, stride), _conv_bn(cout, cout, relu=False))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            pool: nn.Module = (
                nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                if stride != 1
                else nn.Identity()
            )
            self.shortcut = nn.Sequential(
                pool, nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNetV1e(nn.Module):
    """Deep stem, max pool, BasicBlock stages (strides 1, 2, 2, 2): feature strides 4–32."""

    def __init__(self, config: ScrfdConfig) -> None:
        super().__init__()
        half = config.stem_channels // 2
        self.stem = nn.Sequential(
            _conv_bn(3, half, stride=2),
            _conv_bn(half, half),
            _conv_bn(half, config.stem_channels),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        cin = config.stem_channels
        for index, (blocks, planes) in enumerate(
            zip(config.stage_blocks, config.stage_planes, strict=True)
        ):
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(cin, planes, stride)]
            layers += [BasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            cin = planes
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class PAFPN(nn.Module):
    """FPN top-down then a bottom-up path; plain convolutions with bias (no norm, no act)."""

    def __init__(self, in_channels: tuple[int, ...], channels: int) -> None:
        super().__init__()
        count = len(in_channels)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.fpn = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.down = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(count - 1)
        )
        self.pafpn = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1) for _ in range(count - 1)
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, features, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[2:], mode="nearest"
            )
        inner = [conv(x) for conv, x in zip(self.fpn, laterals, strict=True)]
        for i in range(len(inner) - 1):
            inner[i + 1] = inner[i + 1] + self.down[i](inner[i])
        return [inner[0]] + [conv(x) for conv, x in zip(self.pafpn, inner[1:], strict=True)]


class StrideHead(nn.Module):
    """One stride's head: shared conv tower, then score / box / keypoint convs."""

    def __init__(self, cin: int, channels: int, convs: int) -> None:
        super().__init__()
        tower = [_conv_bn(cin if i == 0 else channels, channels) for i in range(convs)]
        self.tower = nn.Sequential(*tower)
        self.cls = nn.Conv2d(channels, ANCHORS, 3, padding=1)
        self.reg = nn.Conv2d(channels, ANCHORS * 4, 3, padding=1)
        self.kps = nn.Conv2d(channels, ANCHORS * KEYPOINTS * 2, 3, padding=1)
        self.scale = nn.Parameter(torch.ones(()))

    @staticmethod
    def _flat(x: torch.Tensor, width: int) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).reshape(-1, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat = self.tower(x)
        scores = self._flat(self.cls(feat), 1).sigmoid()
        boxes = self._flat(self.reg(feat) * self.scale, 4)
        keypoints = self._flat(self.kps(feat), KEYPOINTS * 2)
        return scores, boxes, keypoints


class SCRFD(nn.Module):
    def __init__(self, config: ScrfdConfig = SCRFD_10G) -> None:
        super().__init__()
        self.backbone = ResNetV1e(config)
        self.neck = PAFPN(config.stage_planes[1:], config.neck_channels)
        self.heads = nn.ModuleList(
            StrideHead(config.neck_channels, config.head_channels, config.head_convs)
            for _ in STRIDES
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        levels = self.neck(self.backbone(x)[1:])
        outs = [head(level) for head, level in zip(self.heads, levels, strict=True)]
        return tuple(out[k] for k in range(3) for out in outs)


def scrfd_10g() -> SCRFD:
    return SCRFD(SCRFD_10G)


def scrfd_tiny() -> SCRFD:
    return SCRFD(SCRFD_TINY)
