"""SSD's VGG-16 base (ssd.pytorch layout): `vgg` ModuleList fed from torchvision `vgg16` `features.N`."""

from __future__ import annotations

import torch
from torch import nn

# VGG-16 features with SSD's ceil-mode third pool ("C"); indices match torchvision's `features.N` up to 29.
CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512)
CONV4_3 = 22  # ReLU after conv4_3: SSD's first source map


class XavierConv2d(nn.Conv2d):
    """A Conv2d whose own initialisation is xavier-uniform weights and zero bias (the SSD recipe's)."""

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class SSDVGG(nn.Module):
    """vgg.0-29 = VGG-16 conv1_1..conv5_3 (+ReLUs, pools), 30 pool5 (3,1,1), 31 conv6 (dilated), 33 conv7."""

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for item in CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            elif item == "C":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(cin, item, 3, padding=1), nn.ReLU(inplace=True)]
                cin = item
        layers += [
            nn.MaxPool2d(3, 1, 1),
            XavierConv2d(512, 1024, 3, padding=6, dilation=6),
            nn.ReLU(inplace=True),
            XavierConv2d(1024, 1024, 1),
            nn.ReLU(inplace=True),
        ]
        self.vgg = nn.ModuleList(layers)
        self.out_channels = [512, 1024]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, layer in enumerate(self.vgg):
            x = layer(x)
            if index == CONV4_3:
                outputs.append(x)
        outputs.append(x)
        return outputs

    def zoo_verify_pairs(self) -> list[tuple[str, str | int]]:
        """conv4_3 and conv5_3 (after ReLU) must equal torchvision vgg16's `features.22` and `features.29`."""
        return [("features.22", 0), ("features.29", "vgg.29")]
