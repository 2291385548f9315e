"""IResNet, insightface's ArcFace backbone (arcface_torch `backbones/iresnet.py`), as buffalo_l's
`w600k_r50.onnx` was trained: iresnet50, 112×112 RGB in, a 512-d embedding out (not normalised).

Written from the published architecture (Deng et al., ArcFace; Duta et al., improved ResNet):
a 3×3 stem (64 channels, stride 1) with BN and PReLU; four stages of IBasicBlock with
(3, 4, 14, 3) blocks and 64/128/256/512 channels, each stage starting with a stride-2 block;
an IBasicBlock is BN → 3×3 conv → BN → PReLU → 3×3 conv (carrying the stride) → BN, plus the
input (a 1×1 strided conv + BN where the shape changes). The head: BN → flatten → dropout →
FC 512·7·7 → 512 → BatchNorm1d ("features"). Module names follow insightface, so a state dict
converted from the official graph would load with strict=True.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

EMBEDDING_SIZE = 512
# insightface builds every BatchNorm with eps 1e-5 (PyTorch's default, said here because the
# official graph folds them into the convolutions with that value).
BN_EPS = 1e-5


@dataclass(frozen=True)
class IResNetConfig:
    layers: tuple[int, ...] = (3, 4, 14, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    embedding_size: int = EMBEDDING_SIZE
    # The face side after the four stride-2 stages: 112 / 16 = 7.
    final_side: int = 7


IRESNET50 = IResNetConfig()
# Every module kind of iresnet50 at the same 112×112 input (so it is served under the committed
# config) and the same 512-d output: 27 k parameters, nearly all in the FC, which is why the
# last stage narrows to one channel (its 7·7·C × 512 weight would pass 50 k at C = 2).
IRESNET_TINY = IResNetConfig(layers=(1, 1, 1, 1), widths=(4, 4, 4, 1))


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block; the second convolution carries the stride."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=BN_EPS)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes, eps=BN_EPS),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity: torch.Tensor = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """N×3×112×112 float in [-1, 1] ((x − 127.5) / 127.5, RGB) → N×512 embedding."""

    def __init__(self, config: IResNetConfig = IRESNET50) -> None:
        super().__init__()
        stem = config.widths[0]
        self.conv1 = _conv3x3(3, stem)
        self.bn1 = nn.BatchNorm2d(stem, eps=BN_EPS)
        self.prelu = nn.PReLU(stem)
        inplanes = stem
        stages = []
        for blocks, planes in zip(config.layers, config.widths, strict=True):
            stage = [IBasicBlock(inplanes, planes, stride=2)]
            stage += [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm2d(inplanes, eps=BN_EPS)
        # p=0 at inference, as upstream exports it: kept so the module list matches.
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(inplanes * config.final_side**2, config.embedding_size)
        self.features = nn.BatchNorm1d(config.embedding_size, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        embedding: torch.Tensor = self.features(self.fc(self.dropout(x)))
        return embedding


def iresnet50() -> IResNet:
    return IResNet(IRESNET50)


def iresnet_tiny() -> IResNet:
    return IResNet(IRESNET_TINY)
