"""SimCLR network of paper 1 (Ecker et al.): MONAI ResNet18 encoder + two-layer projection head.

Plain ``torch.nn.Module``; the contrastive loss, augmentations and training live in
``mriqa_lib.methods.ecker``.
"""

from __future__ import annotations

import torch
from torch import nn


def resnet18_encoder(in_channels: int = 1, width: float = 1.0, conv1_stride: int = 2) -> nn.Module:
    """A 2-D MONAI ResNet18 without its classifier: ``(B, C, H, W) -> (B, h)`` pooled features.

    Args:
        in_channels: input channels (1 for MR magnitude slices).
        width: MONAI ``widen_factor`` (1.0 = ResNet18 with 64..512 channels, h = 512 * width).
        conv1_stride: stride of the 7x7 stem convolution; MONAI defaults to 1, torchvision's
            ResNet (and SimCLR) use 2, which is also 4x cheaper.
    """
    from monai.networks.nets import ResNet

    return ResNet(
        block="basic",
        layers=[2, 2, 2, 2],
        block_inplanes=[64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=in_channels,
        conv1_t_size=7,
        conv1_t_stride=conv1_stride,
        widen_factor=width,
        feed_forward=False,
    )


class SimCLRNet(nn.Module):
    """Encoder ``f`` (ResNet18) and projection head ``g``: Linear(h,h)-BN-ReLU-Linear(h,proj_dim).

    ``forward`` returns ``(h, z)``: the encoder output (used at inference for the cosine
    similarities) and the projection (used only by the NT-Xent loss).
    """

    def __init__(self, in_channels: int = 1, width: float = 1.0, proj_dim: int = 128, conv1_stride: int = 2) -> None:
        super().__init__()
        self.encoder = resnet18_encoder(in_channels, width, conv1_stride)
        with torch.no_grad():
            self.feature_dim = int(self.encoder.eval()(torch.zeros(2, in_channels, 32, 32)).shape[1])
        self.encoder.train()
        h = self.feature_dim
        self.head = nn.Sequential(nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Linear(h, proj_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, h)`` of images ``(B, C, H, W)``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return h, self.head(h)
