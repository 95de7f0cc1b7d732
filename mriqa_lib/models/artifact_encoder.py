"""2-D artifact encoders E(x) -> m in R^2 (Zuo et al., paper 2): MONAI DenseNet121 or a small CNN.

Plain ``torch.nn.Module`` networks; the contrastive training lives in
``mriqa_lib/methods/zuo``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SmallArtifactEncoder", "build_encoder"]


class SmallArtifactEncoder(nn.Module):
    """A 4x4 stride-4 patch stem, two strided 3x3 conv blocks and one plain 3x3 block (BN + ReLU),
    global average pooling, linear to ``out_dim``. The patch stem sees every pixel (so noise
    texture reaches the features) at a fraction of the cost of full-resolution convolutions.

    Args:
        width: channels of the stem (doubled, then doubled again, in later blocks).
        out_dim: size of m (paper: 2).
    """

    def __init__(self, width: int = 16, out_dim: int = 2) -> None:
        super().__init__()

        def block(c_in: int, c_out: int, k: int, stride: int, pad: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *block(1, width, 4, 4, 0),
            *block(width, 2 * width, 3, 2, 1),
            *block(2 * width, 4 * width, 3, 2, 1),
            *block(4 * width, 4 * width, 3, 1, 1),
        )
        self.head = nn.Linear(4 * width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, H, W) slices -> (B, out_dim)."""
        return self.head(self.features(x).mean(dim=(2, 3)))


def build_encoder(name: str = "small", width: int = 16, out_dim: int = 2) -> nn.Module:
    """The encoder named in params: ``"densenet121"`` (MONAI, 2-D, 1 channel in; the paper's) or
    ``"small"`` (:class:`SmallArtifactEncoder`, for CPU budgets). Weights are random (no download)."""
    if name == "densenet121":
        from monai.networks.nets import DenseNet121

        return DenseNet121(spatial_dims=2, in_channels=1, out_channels=out_dim, pretrained=False)
    if name == "small":
        return SmallArtifactEncoder(width=width, out_dim=out_dim)
    raise ValueError(f"unknown encoder '{name}' (expected 'small' or 'densenet121')")
