"""The demo's networks' building blocks, and the solver-free ``direct`` method's network.

:class:`BasicBlock` is ResNet's residual block; :class:`ResNet18PathNet` is the whole
ResNet-18 of He et al. (2016) with a 144-way linear head, the network that Vlastelica et
al. (2020) and Niepert et al. (2021) train as the solver-free Warcraft baseline: its
outputs are the logits of the path's cells. torchvision is not a dependency, so it is
written here in plain torch, with torchvision's layer shapes (the same parameter count).
"""

from __future__ import annotations

import torch
from torch import nn

RESNET18_WIDTHS = (64, 128, 256, 512)
"""Channels of ResNet-18's four stages (two basic blocks each; stages 2 to 4 halve the resolution)."""


class BasicBlock(nn.Module):
    """ResNet's basic residual block: ``(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)``.

    Two 3x3 convolutions with batch norm; the shortcut is the identity when the shape is
    kept, otherwise a strided 1x1 convolution with batch norm (ResNet's option B, as in
    torchvision), so a stage can halve the resolution and widen the channels.
    """

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        self.conv1 = nn.Conv2d(channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = (
            None
            if stride == 1 and out_channels == channels
            else nn.Sequential(
                nn.Conv2d(channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu((x if self.shortcut is None else self.shortcut(x)) + residual)


def resnet_stem(channels: int = RESNET18_WIDTHS[0]) -> nn.Sequential:
    """ResNet's stem, ``(B, 3, H, W) -> (B, channels, H / 4, W / 4)``: conv 7x7/2, batch norm,
    ReLU, max-pool 3x3/2."""
    return nn.Sequential(
        nn.Conv2d(3, channels, kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


class ResNet18PathNet(nn.Module):
    """The whole ResNet-18 with ``grid * grid`` outputs: the logits of a path's cells.

    ``(B, 3, H, W)`` images in [0, 1] -> ``(B, grid, grid)`` logits (a cell is on the
    predicted path where its logit is positive). Stem, four stages of two basic blocks
    (64, 128, 256, 512 channels; stages 2 to 4 stride 2: a 96x96 map ends at 3x3),
    global average pool, linear layer to ``grid * grid``. About 11.25M parameters at
    ``grid=12``. Unlike :class:`~imle_solvers.demo.CostNet`, whose every output reads one
    tile's pooled features, each logit here sees the whole map.

    Channels-last (NHWC) like ``CostNet``, the faster layout on a CPU thread.
    """

    def __init__(self, grid: int = 12) -> None:
        super().__init__()
        self.grid = grid
        self.stem = resnet_stem(RESNET18_WIDTHS[0])
        stages = []
        for index, width in enumerate(RESNET18_WIDTHS):
            previous = RESNET18_WIDTHS[max(index - 1, 0)]
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(previous, width, stride), BasicBlock(width)))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(RESNET18_WIDTHS[-1], grid * grid)
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(images.contiguous(memory_format=torch.channels_last)))
        return self.head(features.mean(dim=(-2, -1))).view(-1, self.grid, self.grid)
