"""Simple Fully Convolutional Network (SFCN; Peng et al. 2021, as used by Pollak et al. and
Bricout et al., paper 5) and the small MLP head used for QC transfer.

Plain ``torch.nn`` modules, no training logic. With the paper's width
(``channels=(32, 64, 128, 256, 256)``, ``latent=64``) the encoder has 2,950,336 parameters
(paper Table 1) and maps a 160 x 192 x 160 volume to a 64 x 5 x 6 x 5 latent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

PAPER_CHANNELS = (32, 64, 128, 256, 256)
PAPER_LATENT = 64


def conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    """Conv3d(3x3x3) - BN - [MaxPool(2)] - ReLU (SFCN's block order)."""
    layers: list[nn.Module] = [nn.Conv3d(c_in, c_out, 3, padding=1), nn.BatchNorm3d(c_out)]
    if pool:
        layers.append(nn.MaxPool3d(2, stride=2))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SFCNEncoder(nn.Module):
    """SFCN feature extractor: one pooled conv block per entry of ``channels``, then a 1x1x1
    conv block (no pooling) to ``latent`` channels.

    Args:
        channels: output channels of the pooled 3x3x3 blocks (paper: 32, 64, 128, 256, 256).
        latent: channels of the final 1x1x1 block (paper: 64).
        in_channels: input image channels (1 for T1w).
    """

    def __init__(
        self, channels: Sequence[int] = PAPER_CHANNELS, latent: int = PAPER_LATENT, in_channels: int = 1
    ) -> None:
        super().__init__()
        blocks, c = [], in_channels
        for out in channels:
            blocks.append(conv_block(c, out, pool=True))
            c = out
        blocks.append(nn.Sequential(nn.Conv3d(c, latent, 1), nn.BatchNorm3d(latent), nn.ReLU(inplace=True)))
        self.blocks = nn.Sequential(*blocks)
        self.latent = latent
        self.n_pool = len(channels)

    def latent_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """(channels, x, y, z) of the latent for an input of spatial ``input_shape``."""
        dims = []
        for n in input_shape:
            for _ in range(self.n_pool):
                n = n // 2
            dims.append(n)
        return (self.latent, *dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, X, Y, Z) -> (B, latent, x, y, z)
        return self.blocks(x)


class SFCNHead(nn.Module):
    """SFCN classifier: global average pool, dropout, 1x1x1 conv to ``n_bins``, log-softmax."""

    def __init__(self, latent: int = PAPER_LATENT, n_bins: int = 50, dropout: float = 0.5) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.conv = nn.Conv3d(latent, n_bins, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # -> (B, n_bins) log-probabilities
        z = torch.nn.functional.adaptive_avg_pool3d(z, 1)
        return torch.log_softmax(self.conv(self.drop(z)).flatten(1), dim=1)


class SFCN(nn.Module):
    """Encoder + bin classifier: returns log-probabilities over the regression bins."""

    def __init__(
        self,
        channels: Sequence[int] = PAPER_CHANNELS,
        latent: int = PAPER_LATENT,
        n_bins: int = 50,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.encoder = SFCNEncoder(channels, latent)
        self.head = SFCNHead(latent, n_bins, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class QCHead(nn.Module):
    """Transfer MLP on the flattened latent: Linear - BN - ReLU - Dropout - Linear, or with
    ``dropout_at="input"`` Dropout - Linear - BN - ReLU - Linear (the authors' transfer MLP).

    With the paper's 64 x 5 x 6 x 5 latent and ``hidden=10`` it has 96,063 parameters (96,083
    when BatchNorm's running mean/variance are counted, which matches paper Table 1).
    """

    def __init__(
        self,
        in_features: int,
        hidden: int = 10,
        n_classes: int = 3,
        dropout: float = 0.7,
        dropout_at: str = "hidden",
    ) -> None:
        super().__init__()
        if dropout_at not in ("hidden", "input"):
            raise ValueError(f"dropout_at must be 'hidden' or 'input', got {dropout_at!r}")
        layers = [nn.Flatten(), nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        layers.insert(1 if dropout_at == "input" else len(layers), nn.Dropout(dropout))
        self.net = nn.Sequential(*layers, nn.Linear(hidden, n_classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # logits
        return self.net(z)


class SFCNClassifier(nn.Module):
    """SFCN encoder followed by :class:`QCHead` (the from-scratch baseline, or the transfer model
    with a frozen pretrained encoder), or with ``head="sfcn"`` by the SFCN's own head (average pool,
    dropout, 1x1x1 conv to the classes: the authors' from-scratch model); ``forward`` gives
    logits (the SFCN head's log-softmax output is logits up to a per-sample constant)."""

    def __init__(
        self,
        encoder: SFCNEncoder,
        in_features: int,
        hidden: int = 10,
        n_classes: int = 3,
        dropout: float = 0.7,
        head: str = "mlp",
        dropout_at: str = "hidden",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        if head == "sfcn":
            self.head = SFCNHead(encoder.latent, n_classes, dropout)
        elif head == "mlp":
            self.head = QCHead(in_features, hidden, n_classes, dropout, dropout_at)
        else:
            raise ValueError(f"head must be 'mlp' or 'sfcn', got {head!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def n_parameters(module: nn.Module) -> int:
    """Number of trainable-or-not parameters (buffers excluded)."""
    return int(sum(p.numel() for p in module.parameters()))
