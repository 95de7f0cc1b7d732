"""3-D U-Nets with heteroscedastic heads (Shaw et al., paper 3): plain ``torch.nn.Module``s.

nnU-Net style blocks (as MONAI's DynUNet): conv-[InstanceNorm]-LeakyReLU twice per level,
strided-conv downsampling, transposed-conv upsampling with skip connections. Written in plain torch
because MONAI's blocks always normalise: instance normalisation rescales every feature map to unit
variance and so hides the absolute noise level that the variance head has to report; ``norm="none"``
keeps it (the embedded default).

* :class:`HeteroUNet`: one decoder, two 1x1x1 heads: mean ``f_r(x)`` and log-variance
  ``log sigma_r^2``; a residual connection adds the input to the mean head, so a zero-initialised
  mean head returns the input unchanged (the network learns the correction).
* :class:`MultiTaskHeteroUNet`: shared encoder, a reconstruction decoder (mean + log-variance) and
  a segmentation decoder (class logits + log-variance of the segmentation task, per voxel).

Spatial sizes must be divisible by ``2 ** (len(features) - 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["HeteroUNet", "MultiTaskHeteroUNet", "UNetEncoder", "UNetDecoder"]

_NORMS = ("instance", "none")


def _conv_norm_act(cin: int, cout: int, stride: int, norm: str) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=norm == "none")]
    if norm == "instance":
        layers.append(nn.InstanceNorm3d(cout, affine=True))
    layers.append(nn.LeakyReLU(0.01, inplace=True))
    return layers


class ConvBlock(nn.Sequential):
    """nnU-Net block: two (3x3x3 conv, [InstanceNorm], LeakyReLU 0.01); the first conv may stride."""

    def __init__(self, cin: int, cout: int, stride: int = 1, norm: str = "instance") -> None:
        super().__init__(*_conv_norm_act(cin, cout, stride, norm), *_conv_norm_act(cout, cout, 1, norm))


class UNetEncoder(nn.Module):
    """Levels of two 3x3x3 conv blocks; each level after the first halves the size (stride 2)."""

    def __init__(self, in_channels: int, features: Sequence[int], norm: str = "instance") -> None:
        super().__init__()
        _norm(norm)
        self.levels = nn.ModuleList()
        prev = in_channels
        for i, ch in enumerate(features):
            self.levels.append(ConvBlock(prev, ch, 1 if i == 0 else 2, norm))
            prev = ch

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for level in self.levels:
            x = level(x)
            skips.append(x)
        return skips


class UpBlock(nn.Module):
    """2x2x2 transposed conv, concatenation with the skip, :class:`ConvBlock`."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)
        self.conv = ConvBlock(2 * cout, cout, 1, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNetDecoder(nn.Module):
    """Transposed-conv upsampling, concatenation with the encoder skip, two conv blocks."""

    def __init__(self, features: Sequence[int], norm: str = "instance") -> None:
        super().__init__()
        rev = list(features)[::-1]
        self.ups = nn.ModuleList(UpBlock(rev[i], rev[i + 1], norm) for i in range(len(rev) - 1))

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]
        for up, skip in zip(self.ups, skips[-2::-1]):
            x = up(x, skip)
        return x


def _norm(name: str) -> str:
    if name not in _NORMS:
        raise ValueError(f"norm must be one of {list(_NORMS)}, got {name!r}")
    return name


def _init(module: nn.Module, logvar_init: float | None) -> None:
    """He initialisation for LeakyReLU convs (keeps activations at scale without normalisation);
    the log-variance head starts at ``logvar_init`` everywhere."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)) and "head" not in name:
            nn.init.kaiming_normal_(m.weight, a=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if logvar_init is not None and hasattr(module, "logvar_head"):
        nn.init.zeros_(module.logvar_head.weight)
        nn.init.constant_(module.logvar_head.bias, float(logvar_init))


def _head(channels: int, out: int, zero: bool) -> nn.Conv3d:
    conv = nn.Conv3d(channels, out, kernel_size=1)
    if zero:
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    return conv


class HeteroUNet(nn.Module):
    """Residual 3-D U-Net for image reconstruction with a mean and a log-variance head.

    Args:
        features: channels per level (e.g. ``(8, 16, 32, 64)``; nnU-Net starts at 32).
        residual: add the input image to the mean head (paper, Fig. 2).
        zero_init_mean: start the mean head at zero, so the untrained net is the identity.
        logvar_range: the log-variance is squashed smoothly into this range (numerical safety).
        norm: "instance" (nnU-Net) or "none".
        logvar_init: initial log-variance (bias of the log-variance heads): starting near the
            typical residual of a clean scan speeds up training.

    ``forward(x)`` takes ``(B, 1, X, Y, Z)`` and returns ``(mean, logvar)``, both ``(B, 1, X, Y, Z)``.
    """

    def __init__(
        self,
        features: Sequence[int] = (8, 16, 32, 64),
        residual: bool = True,
        zero_init_mean: bool = True,
        logvar_range: tuple[float, float] = (-12.0, 6.0),
        norm: str = "instance",
        logvar_init: float = -6.0,
    ) -> None:
        super().__init__()
        self.encoder = UNetEncoder(1, features, norm)
        self.decoder = UNetDecoder(features, norm)
        self.mean_head = _head(features[0], 1, zero_init_mean)
        self.logvar_head = _head(features[0], 1, False)
        self.residual = residual
        self.logvar_range = logvar_range
        _init(self, logvar_init)

    def _squash(self, s: torch.Tensor) -> torch.Tensor:
        lo, hi = self.logvar_range
        return lo + (hi - lo) * torch.sigmoid((s - (lo + hi) / 2) * 4 / (hi - lo))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.decoder(self.encoder(x))
        mean = self.mean_head(h) + (x if self.residual else 0)
        return mean, self._squash(self.logvar_head(h))


class MultiTaskHeteroUNet(HeteroUNet):
    """Shared encoder; a reconstruction decoder (mean, log-variance) and a segmentation decoder
    (``n_classes`` logits and a per-voxel log-variance of the segmentation task).

    ``forward(x)`` returns ``(mean, logvar_r, logits, logvar_s)``.
    """

    def __init__(
        self,
        features: Sequence[int] = (8, 16, 32, 64),
        n_classes: int = 2,
        residual: bool = True,
        zero_init_mean: bool = True,
        logvar_range: tuple[float, float] = (-12.0, 6.0),
        norm: str = "instance",
        logvar_init: float = -6.0,
    ) -> None:
        super().__init__(features, residual, zero_init_mean, logvar_range, norm, logvar_init)
        self.seg_decoder = UNetDecoder(features, norm)
        self.seg_head = _head(features[0], n_classes, False)
        self.seg_logvar_head = _head(features[0], 1, False)
        _init(self.seg_decoder, None)
        nn.init.zeros_(self.seg_logvar_head.weight)
        nn.init.constant_(self.seg_logvar_head.bias, -2.0)  # sigma_s^2 = 2 CE at CE ~ 0.07

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        skips = self.encoder(x)
        h = self.decoder(skips)
        g = self.seg_decoder(skips)
        mean = self.mean_head(h) + (x if self.residual else 0)
        return mean, self._squash(self.logvar_head(h)), self.seg_head(g), self._squash(self.seg_logvar_head(g))
