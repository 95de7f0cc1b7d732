"""Paper 1 (Ecker et al.): the SimCLR network and the scorer on a tiny trained-from-scratch model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning_checks import fit_and_reload

from mriqa_lib.models.resnet_simclr import SimCLRNet


def test_simclr_net_shapes_and_stride():
    torch.manual_seed(0)
    net = SimCLRNet(in_channels=1, width=0.125, proj_dim=16, conv1_stride=2)
    assert net.encoder.conv1.stride == (2, 2)  # MONAI's default would be 1
    h, z = net(torch.rand(4, 1, 32, 32))
    assert h.shape == (4, net.feature_dim) and net.feature_dim == 64
    assert z.shape == (4, 16)
    head = [type(m).__name__ for m in net.head]
    assert head == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    # fully convolutional encoder: any input size gives the same feature size
    assert net.eval().encode(torch.rand(2, 1, 48, 40)).shape == (2, 64)


def test_scorer_columns_on_tiny_bank(tmp_path):
    from mriqa_lib.io import Volume, write_json
    from mriqa_lib.methods.ecker.params import EckerParams
    from mriqa_lib.methods.ecker.score import Scorer, load_scorer

    p = EckerParams(n_slices=2, slice_step=1, img_size=16, width=0.125, n_refs=2)
    torch.manual_seed(0)
    net = SimCLRNet(1, p.width, p.proj_dim, p.conv1_stride).eval()
    torch.save(net.state_dict(), tmp_path / "simclr.pt")
    write_json(
        tmp_path / "config.json",
        {"params": p.model_dump(mode="json"), "feature_dim": net.feature_dim, "conform_grid": False},
    )
    rng = np.random.default_rng(0)
    d = net.feature_dim
    np.savez(
        tmp_path / "references.npz",
        hq=rng.random((3, 2, d)),
        motion=rng.random((3, 2, d)),
        noise=rng.random((3, 2, d)),
        respiratory=rng.random((3, 2, d)),
        participant_id=np.array(["a", "b", "c"]),
        sex=np.array(["M", "F", "M"]),
        height=np.array([170.0, 160, 180]),
        weight=np.array([70.0, 60, 80]),
    )
    scorer = load_scorer(tmp_path)
    vol = Volume(rng.random((12, 10, 6)).astype(np.float32), np.eye(4))
    row = scorer.score(vol, sex="M", height=175.0, weight=75.0)
    assert set(row) == {"ecker_class", "ecker_sim", "ecker_sim_hq", "ecker_sim_lq", "ecker_lq_kind", "ecker_lq_margin"}
    # the LQ similarity is that of the LQ set the scan resembles most
    single = {
        k: Scorer(scorer.net, scorer.p, dict(np.load(tmp_path / "references.npz")), False, lq=(k,)).score(
            vol, sex="M", height=175.0, weight=75.0
        )["ecker_sim_lq"]
        for k in ("motion", "noise")
    }
    assert row["ecker_sim_lq"] == pytest.approx(max(single.values()))
    assert row["ecker_lq_kind"] == max(single, key=single.get)
    assert (row["ecker_lq_margin"] > 0) == (row["ecker_class"] == "LQ")
    assert row["ecker_class"] in ("HQ", "LQ")
    expect = row["ecker_sim_hq"] if row["ecker_class"] == "HQ" else 1 - row["ecker_sim_lq"]
    assert row["ecker_sim"] == pytest.approx(expect)
    assert (row["ecker_class"] == "HQ") == (row["ecker_sim_hq"] >= row["ecker_sim_lq"])


def test_simclr_module_reloads_from_its_checkpoint(tmp_path):
    """A trained SimCLRModule is rebuilt by ``load_from_checkpoint`` alone (saved hyper-parameters)."""
    from torch.utils.data import DataLoader, TensorDataset

    from mriqa_lib.methods.ecker.params import EckerParams
    from mriqa_lib.methods.ecker.simclr import SimCLRModule

    p = EckerParams(img_size=16, train_size=16, width=0.125, proj_dim=8, epochs=1, warmup_epochs=0, batch_size=4)
    torch.manual_seed(0)
    module = SimCLRModule(p, steps_per_epoch=1)
    loader = DataLoader(TensorDataset(torch.rand(4, 1, 16, 16)), batch_size=4)
    _, loaded = fit_and_reload(module, tmp_path, loader)
    assert loaded.p == p and loaded.steps_per_epoch == 1
    x = torch.rand(3, 1, 16, 16)
    h, z = module.net.eval()(x)
    h2, z2 = loaded.net.eval()(x)
    assert torch.equal(h, h2) and torch.equal(z, z2)
