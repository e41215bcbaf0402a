"""ResNetBackbone: torchvision's ResNet trunk, same module names, no torchvision import, C2-C5 outputs."""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, width, 3, stride)
        self.conv2, self.bn2 = _conv_bn(width, width, 3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = _conv_bn(width, width * 4, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNetBackbone(nn.Module):
    """conv1/bn1/relu/maxpool then layer1..layerN (N = the deepest stage `out_indices` asks for)."""

    def __init__(self, block: str, layers: tuple[int, ...], out_indices: tuple[int, ...], in_chans: int = 3) -> None:
        super().__init__()
        kind = BasicBlock if block == "basic" else Bottleneck
        self.out_indices = out_indices
        self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for stage in range(max(out_indices) + 1):
            width, stride = 64 * 2**stage, 1 if stage == 0 else 2
            downsample = None
            if stride != 1 or cin != width * kind.expansion:
                downsample = nn.Sequential(*_conv_bn(cin, width * kind.expansion, 1, stride))
                downsample[0].padding = (0, 0)
            blocks = [kind(cin, width, stride, downsample)]
            cin = width * kind.expansion
            blocks += [kind(cin, width) for _ in range(1, layers[stage])]
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.out_channels = [64 * 2**i * kind.expansion for i in out_indices]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outputs = []
        for stage in range(max(self.out_indices) + 1):
            x = getattr(self, f"layer{stage + 1}")(x)
            if stage in self.out_indices:
                outputs.append(x)
        return outputs

    def zoo_verify_pairs(self) -> list[tuple[str, int]]:
        """Each returned map must equal the source classifier's `layerN` output."""
        return [(f"layer{stage + 1}", index) for index, stage in enumerate(self.out_indices)]
