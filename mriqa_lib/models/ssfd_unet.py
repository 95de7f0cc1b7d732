"""Networks of paper 4 (SSFD, Adamson et al.): plain ``torch.nn`` modules, no training logic.

* :class:`SsfdUNet`: the inpainting U-Net whose encoder gives the SSFD features. Encoder as the
  public SSFD encoder: 5 levels (paper channels 20/40/80/160/320), each block
  conv3-ReLU-conv3-ReLU-GroupNorm, max-pool 2 between levels; the feature of level *i* is the
  output of its second ReLU (``block{i}_relu2``, before GroupNorm).
* :class:`ReconUNet`: a small residual U-Net mapping a zero-filled reconstruction to the fully
  sampled image (the "supervised U-Net" 4x reconstruction).
* :class:`VGG16Features`: VGG-16's convolutional stack (configuration D) with torchvision's
  parameter names ``features.N.weight``, so a user's ImageNet state dict loads into it; no
  weights ship or download.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class DoubleConv(nn.Module):
    """conv3-ReLU-conv3-ReLU-GroupNorm; returns (normalised output, second-ReLU feature)."""

    def __init__(self, c_in: int, c_out: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, c_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.norm(feat), feat


class SsfdEncoder(nn.Module):
    """5-level encoder; ``forward`` returns the list of the 5 level features (block1..block5)."""

    def __init__(self, channels: tuple[int, ...] = (20, 40, 80, 160, 320), groups: int = 10, in_ch: int = 1) -> None:
        super().__init__()
        chans = [in_ch, *channels]
        self.blocks = nn.ModuleList(DoubleConv(a, b, groups) for a, b in zip(chans[:-1], chans[1:]))

    def forward(self, x: torch.Tensor, upto: int | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Args: x (B, 1, H, W), H and W divisible by 16; upto: stop after this level (1-5).

        Returns: (normalised outputs for the skip connections, second-ReLU features)."""
        skips, feats = [], []
        n = len(self.blocks) if upto is None else int(upto)
        for i, block in enumerate(self.blocks[:n]):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x, feat = block(x)
            skips.append(x)
            feats.append(feat)
        return skips, feats


class SsfdUNet(nn.Module):
    """Inpainting U-Net: :class:`SsfdEncoder` + a mirrored decoder (transposed-conv upsampling,
    skip concatenation, the same blocks), 1x1 output convolution."""

    def __init__(self, channels: tuple[int, ...] = (20, 40, 80, 160, 320), groups: int = 10) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        self.encoder = SsfdEncoder(channels, groups)
        self.ups = nn.ModuleList()
        self.decs = nn.ModuleList()
        for hi, lo in zip(channels[::-1][:-1], channels[::-1][1:]):
            self.ups.append(nn.ConvTranspose2d(hi, lo, 2, stride=2))
            self.decs.append(DoubleConv(2 * lo, lo, groups))
        self.head = nn.Conv2d(channels[0], 1, 1)

    def features(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Second-ReLU feature of encoder level ``layer`` (1-5) for input ``x`` (B, 1, H, W)."""
        _, feats = self.encoder(x, upto=layer)
        return feats[layer - 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, _ = self.encoder(x)
        y = skips[-1]
        for up, dec, skip in zip(self.ups, self.decs, skips[::-1][1:]):
            y, _ = dec(torch.cat([up(y), skip], dim=1))
        return self.head(y)


class ReconUNet(nn.Module):
    """Residual U-Net for 2-D reconstruction: output = input + U-Net(input).

    Levels: len(channels); conv3-InstanceNorm-LeakyReLU twice per level, average-pool down,
    bilinear up. H and W must be divisible by 2**(len(channels) - 1).
    """

    def __init__(self, channels: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)

        def block(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(a, b, 3, padding=1),
                nn.InstanceNorm2d(b),
                nn.LeakyReLU(0.2),
                nn.Conv2d(b, b, 3, padding=1),
                nn.InstanceNorm2d(b),
                nn.LeakyReLU(0.2),
            )

        chans = [1, *channels]
        self.down = nn.ModuleList(block(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.up = nn.ModuleList(block(hi + lo, lo) for hi, lo in zip(channels[::-1][:-1], channels[::-1][1:]))
        self.head = nn.Conv2d(channels[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, y = [], x
        for i, blk in enumerate(self.down):
            if i > 0:
                y = F.avg_pool2d(y, 2)
            y = blk(y)
            skips.append(y)
        for blk, skip in zip(self.up, skips[::-1][1:]):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = blk(torch.cat([y, skip], dim=1))
        return x + self.head(y)


# VGG-16 configuration "D": numbers are conv widths, "M" max-pool.
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# indices (in ``features``) of relu1_2, relu2_2, relu3_3, relu4_3 (Johnson et al. perceptual loss)
VGG16_PERCEPTUAL_LAYERS = (3, 8, 15, 22)


class VGG16Features(nn.Module):
    """VGG-16 convolutional stack with torchvision's module indices (``features.0`` ... ``features.30``)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                c_in = int(v)
        self.features = nn.Sequential(*layers)

    def taps(self, x: torch.Tensor, layers: tuple[int, ...] = VGG16_PERCEPTUAL_LAYERS) -> list[torch.Tensor]:
        """Activations after the modules listed in ``layers`` (x: (B, 3, H, W), ImageNet-normalised)."""
        out = []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in layers:
                out.append(x)
            if i >= max(layers):
                break
        return out
