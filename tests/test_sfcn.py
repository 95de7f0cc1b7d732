"""SFCN architecture (paper 5, Table 1 and Fig. 1)."""

import torch

from mriqa_lib.models.sfcn import SFCN, QCHead, SFCNEncoder, n_parameters


def test_paper_width_latent_and_parameter_count():
    torch.manual_seed(0)
    enc = SFCNEncoder()  # paper width 32-64-128-256-256, latent 64
    assert n_parameters(enc) == 2_950_336  # paper Table 1, "SFCN Model Encoder"
    assert enc.latent_shape((160, 192, 160)) == (64, 5, 6, 5)
    enc.eval()
    with torch.no_grad():
        z = enc(torch.randn(1, 1, 160, 192, 160))
    assert tuple(z.shape) == (1, 64, 5, 6, 5)


def test_transfer_head_parameter_count_matches_table1():
    head = QCHead(64 * 5 * 6 * 5, hidden=10)
    n_buffers = sum(b.numel() for name, b in head.named_buffers() if "running" in name)
    assert n_parameters(head) == 96_063
    assert n_parameters(head) + n_buffers == 96_083  # paper Table 1 counts BN running statistics


def test_configurable_width_and_bins():
    net = SFCN(channels=[4, 8, 8], latent=6, n_bins=50, dropout=0.0).eval()
    assert net.encoder.latent_shape((24, 32, 24)) == (6, 3, 4, 3)
    with torch.no_grad():
        logp = net(torch.randn(2, 1, 24, 32, 24))
    assert logp.shape == (2, 50)
    assert torch.allclose(logp.exp().sum(1), torch.ones(2), atol=1e-5)
