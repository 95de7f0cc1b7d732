"""Contrastive artifact encoder (paper 2, Sec. 2.1): sampler, simulated negatives, loss Eq. 1.

Query x* = a slice of a volume; positive x+ = a slice of *another orientation* of the same
volume (same artifact level); negatives = slices of other volumes, and x* with simulated noise
or motion (the paper's two kinds) and, by default, blur, ghosting or a bias field
(``extra_negatives``). Loss (Eq. 1), with dot products of the 2-D features m::

    L = -log[ exp(m*.m+) / (exp(m*.m+) + (1/N) sum_i exp(m*.m-_i)) ]
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch

from mriqa_lib.methods.zuo.params import ZuoParams

__all__ = [
    "ContrastiveSampler",
    "EncoderModule",
    "contrastive_loss",
    "simulate_artifact",
    "simulate_motion",
    "simulate_noise",
    "train_encoder",
]


def contrastive_loss(q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Eq. 1 of the paper, averaged over the batch.

    Args:
        q: (B, D) query features m*.
        pos: (B, D) positive features m+.
        neg: (B, N, D) negative features m-_i (N per query).
    """
    s_pos = (q * pos).sum(-1)
    s_neg = torch.einsum("bd,bnd->bn", q, neg)
    log_mean_neg = torch.logsumexp(s_neg, dim=1) - math.log(neg.shape[1])
    return (torch.logaddexp(s_pos, log_mean_neg) - s_pos).mean()


def _foreground_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of each image over its foreground (> 10 % of its max), shape (B, 1, 1, 1)."""
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    fg = (x > 0.1 * peak).float()
    return (x * fg).sum(dim=(1, 2, 3), keepdim=True) / fg.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1)


def simulate_noise(x: torch.Tensor, rel_sigma: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rician noise with sigma = ``rel_sigma`` (B,) x mean foreground signal of each slice."""
    sigma = rel_sigma.view(-1, 1, 1, 1) * _foreground_mean(x)
    n1 = torch.randn(x.shape, generator=gen) * sigma
    n2 = torch.randn(x.shape, generator=gen) * sigma
    return torch.sqrt((x + n1) ** 2 + n2**2)


def simulate_motion(
    x: torch.Tensor, max_shift: torch.Tensor, gen: torch.Generator, n_segments: int = 4
) -> torch.Tensor:
    """Rigid in-plane motion during acquisition (the k-space model of TorchIO's ``Motion``, in 2-D):
    the phase-encoding lines (rows) are split into ``n_segments`` random segments; each segment
    away from the k-space centre is filled from the image moved by a random rigid pose
    (translation U(-s, s) pixels per axis and rotation U(-s, s) degrees, s = ``max_shift``), which
    gives ghosting, ringing and blurring along the phase-encoding axis.

    Args:
        x: (B, 1, H, W) slices.
        max_shift: (B,) maximum translation (pixels) and rotation (degrees).
        gen: torch random generator.
        n_segments: number of k-space segments (poses).
    """
    import torch.nn.functional as F

    b, _, h, w = x.shape
    cuts = torch.sort(torch.rand(b, n_segments - 1, generator=gen), dim=1).values * h  # segment borders (rows)
    seg = (torch.arange(h).float().view(1, h, 1) >= cuts.view(b, 1, -1)).sum(-1)  # (B, H) segment of each row
    u = torch.rand(b, n_segments, 3, generator=gen) * 2 - 1
    shifts = u[..., :2] * max_shift.view(-1, 1, 1)
    angles = torch.deg2rad(u[..., 2] * max_shift.view(-1, 1))

    def kspace(img: torch.Tensor) -> torch.Tensor:
        return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(img, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))

    k = kspace(x[:, 0])
    centre_seg = seg[:, h // 2]
    for s_i in range(n_segments):
        cos, sin = torch.cos(angles[:, s_i]), torch.sin(angles[:, s_i])
        theta = torch.stack(
            [
                torch.stack([cos, -sin, 2 * shifts[:, s_i, 1] / w], -1),
                torch.stack([sin, cos, 2 * shifts[:, s_i, 0] / h], -1),
            ],
            1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        moved = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        rows = ((seg == s_i) & (centre_seg != s_i).view(-1, 1)).unsqueeze(-1)  # the centre segment keeps the pose 0
        k = torch.where(rows, kspace(moved[:, 0]), k)
    out = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))
    return out.abs().unsqueeze(1).float()


def simulate_artifact(
    x: torch.Tensor, name: str, severity: np.ndarray, rng: np.random.Generator, spacing_mm: float
) -> torch.Tensor:
    """Artifact ``name`` of :mod:`mriqa_lib.artifacts` applied to each slice of ``x`` (B, 1, H, W).

    Args:
        severity: (B,) severities in the artifact's unit.
        rng: draws each slice's artifact seed.
        spacing_mm: the slices' pixel size (mm severities such as blur's sigma).
    """
    from mriqa_lib.artifacts import apply_artifact

    seeds = rng.integers(0, 2**31, len(x))
    out = [
        apply_artifact(name, img[0].numpy(), float(s), int(seed), spacing=spacing_mm)[0]
        for img, s, seed in zip(x, severity, seeds)
    ]
    return torch.as_tensor(np.stack(out)[:, None], dtype=x.dtype)


class ContrastiveSampler(torch.utils.data.Dataset):
    """Mini-batches of (query, positive, other-volume index) for the contrastive loss.

    Item ``i`` is a whole mini-batch, drawn from ``SeedSequence([seed, i])`` (deterministic).

    Args:
        slices: orientation -> (V, K, S, S) float array of training slices (same V volumes).
        p: params (batch_volumes, n_negatives_volume, steps).
    """

    def __init__(self, slices: dict[str, np.ndarray], p: ZuoParams, seed: int = 0) -> None:
        self.slices = {o: torch.as_tensor(np.asarray(a, dtype=np.float32)) for o, a in slices.items()}
        self.orients = list(self.slices)
        self.n_volumes = next(iter(self.slices.values())).shape[0]
        if self.n_volumes < 2:
            raise ValueError("contrastive training needs at least 2 volumes")
        self.p, self.seed = p, seed

    def __len__(self) -> int:
        return self.p.steps

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, i]))
        b = min(self.p.batch_volumes, self.n_volumes)
        vols = rng.choice(self.n_volumes, b, replace=False)
        o_q = rng.integers(0, len(self.orients), b)
        o_p = (o_q + rng.integers(1, len(self.orients), b)) % len(self.orients)  # another orientation
        q, pos = [], []
        for v, oq, op in zip(vols, o_q, o_p):
            sq, sp = self.slices[self.orients[oq]], self.slices[self.orients[op]]
            q.append(sq[v, rng.integers(0, sq.shape[1])])
            pos.append(sp[v, rng.integers(0, sp.shape[1])])
        # other-volume negatives: indices into the 2B encoded query + positive slices of the batch
        nv = self.p.n_negatives_volume
        neg_idx = np.zeros((b, nv), dtype=np.int64)
        for j in range(b):
            pool = np.array([k for k in range(2 * b) if k % b != j])
            neg_idx[j] = rng.choice(pool, nv, replace=nv > len(pool))
        return {
            "query": torch.stack(q).unsqueeze(1),
            "positive": torch.stack(pos).unsqueeze(1),
            "neg_idx": torch.as_tensor(neg_idx),
            "seed": torch.tensor(int(rng.integers(2**31))),
        }


class EncoderModule(L.LightningModule):
    """Trains an artifact encoder with Eq. 1; simulated negatives are made on the fly.

    The encoder is built here (``build_encoder(p.encoder, p.width)``, from the global torch RNG),
    and the settings are saved as hyper-parameters, so :meth:`load_from_checkpoint` rebuilds it.

    Args:
        params: ``zuo`` settings (a :class:`ZuoParams` or its dict).
    """

    def __init__(self, params: ZuoParams | dict) -> None:
        from mriqa_lib.models.artifact_encoder import build_encoder

        super().__init__()
        p = params if isinstance(params, ZuoParams) else ZuoParams(**params)
        self.save_hyperparameters({"params": p.model_dump(mode="json")})
        self.encoder, self.p = build_encoder(p.encoder, p.width), p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def simulated_negatives(self, query: torch.Tensor, seed: int) -> torch.Tensor:
        """(B, K, 1, H, W): each query with a simulated artifact of random strength; negative k gets
        kind ``k mod n`` of [noise, motion, *extra_negatives]. With ``brain_only`` only the query's
        brain (its non-zero pixels) is kept."""
        gen = torch.Generator().manual_seed(seed)
        k = self.p.n_negatives_simulated
        reps = query.repeat_interleave(k, dim=0)  # (B*K, 1, H, W), query-major
        extra = list(self.p.extra_negatives.items())
        kind = torch.arange(reps.shape[0]) % k % (2 + len(extra))
        lo, hi = self.p.noise_range
        sig = lo + (hi - lo) * torch.rand(reps.shape[0], generator=gen)
        mlo, mhi = self.p.motion_range_px
        shift = mlo + (mhi - mlo) * torch.rand(reps.shape[0], generator=gen)
        noisy, moved = simulate_noise(reps, sig, gen), simulate_motion(reps, shift, gen)
        out = torch.where(kind.view(-1, 1, 1, 1) == 0, noisy, moved)
        rng = np.random.default_rng([seed, 1])  # its own stream: the paper's two kinds draw as without extras
        for i, (name, (lo, hi)) in enumerate(extra, start=2):
            rows = torch.nonzero(kind == i).flatten()
            if len(rows):
                sev = rng.uniform(lo, hi, len(rows))
                out[rows] = simulate_artifact(reps[rows], name, sev, rng, self.p.template_spacing)
        if self.p.brain_only:  # a prepared scan's brain extraction removes what falls outside the brain
            out = out * (reps > 0)
        return out.view(query.shape[0], k, *query.shape[1:])

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        loss = self.batch_loss(batch)
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch["query"].shape[0])
        return loss

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 1 on one :class:`ContrastiveSampler` mini-batch (simulated negatives drawn from its seed)."""
        q_img, p_img = batch["query"], batch["positive"]
        b = q_img.shape[0]
        parts = [q_img, p_img]
        k = self.p.n_negatives_simulated
        if k:
            sim = self.simulated_negatives(q_img, int(batch["seed"]))
            parts.append(sim.reshape(b * k, *q_img.shape[1:]))
        m = self.encoder(torch.cat(parts))
        mq, mp = m[:b], m[b : 2 * b]
        negs = []
        if self.p.n_negatives_volume:
            negs.append(m[: 2 * b][batch["neg_idx"]])  # (B, Nv, D)
        if k:
            negs.append(m[2 * b :].view(b, k, -1))
        return contrastive_loss(mq, mp, torch.cat(negs, dim=1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.encoder.parameters(), lr=self.p.lr, weight_decay=self.p.weight_decay)


def train_encoder(
    slices: dict[str, np.ndarray], p: ZuoParams, trainer_params, ckpt_dir, init: dict | None = None
) -> tuple[EncoderModule, float]:
    """Train the artifact encoder (Eq. 1) for ``p.steps`` mini-batches of :class:`ContrastiveSampler`.

    The global torch RNG is seeded with ``p.seed`` just before the encoder is built, so the same
    settings give the same weights.

    Args:
        slices: orientation -> ``(V, K, S, S)`` training slices (the encoder set).
        p: ``zuo`` settings.
        trainer_params: ``trainer`` settings (accelerator, devices, workers, ...).
        ckpt_dir: Lightning folder (checkpoint and CSV logs).
        init: encoder weights to start from (a state dict; fine-tuning), else a fresh encoder.

    Returns:
        the trained module (its ``encoder`` in eval mode) and the mean loss of the epoch.
    """
    from torch.utils.data import DataLoader

    from mriqa_lib.training import build_trainer

    torch.manual_seed(p.seed)
    module = EncoderModule(p)
    if init is not None:
        module.encoder.load_state_dict(init)
    loader = DataLoader(
        ContrastiveSampler(slices, p, p.seed), batch_size=None, shuffle=False, num_workers=trainer_params.num_workers
    )
    trainer = build_trainer(trainer_params, ckpt_dir, max_epochs=1, monitor=None, enable_progress_bar=True)
    trainer.fit(module, loader)
    loss = float(trainer.callback_metrics.get("loss_epoch", torch.tensor(np.nan)))
    module.encoder.eval()
    return module, loss
