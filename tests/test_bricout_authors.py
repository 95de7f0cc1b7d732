"""Paper 5 as the authors' code ran it: pipeline order, gamma/bias probability, intensity scaling, heads."""

import numpy as np
import pytest
import test_bricout_pipeline as base
import torch

from mriqa_lib.methods.bricout.data import augment
from mriqa_lib.methods.bricout.params import AugmentParams, BricoutParams, MotionParams
from mriqa_lib.models.sfcn import QCHead, SFCNClassifier, SFCNEncoder, n_parameters


def _head(shape=(24, 24, 24)) -> np.ndarray:
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    r = np.sqrt((z - 12) ** 2 + (y - 11) ** 2 + (x - 12) ** 2)
    return np.where(r < 9, 1.0 + 0.3 * np.sin(x / 2.0), 0.0).astype(np.float32)


def _pass(seed: int = 3, **augment_settings) -> tuple[np.ndarray, dict]:
    mp = MotionParams(backend="fast", clean_fraction=1.0)  # motion is not what these tests look at
    ap = AugmentParams(**{"elastic_max_displacement_mm": 4.0, **augment_settings})
    return augment(_head(), 4.0, seed, mp, ap, (20, 20, 20), return_steps=True)


def test_authors_order_flips_before_the_elastic_deformation_and_corrupts_after_the_motion():
    _, info = _pass(order="authors")
    assert list(info["steps"]) == ["input", "flip", "elastic", "scale", "motion", "bias", "gamma", "crop"]
    _, info = _pass(order="spatial_first")
    assert list(info["steps"]) == ["input", "elastic", "flip", "scale", "motion", "bias", "gamma", "crop"]


def test_without_the_corrupt_step_the_volume_is_the_one_without_bias_and_gamma():
    """corrupt_p = 0 skips bias and gamma: the same as drawing them with zero magnitude (same seed)."""
    for seed in range(4):
        skipped, info = _pass(seed, corrupt_p=0.0)
        zero, _ = _pass(seed, bias_coefficients=0.0, gamma_log=0.0)
        np.testing.assert_allclose(skipped, zero, atol=1e-6)
        assert info["log_gamma"] == 0.0
    corrupted, _ = _pass(0, corrupt_p=1.0, bias_coefficients=0.35, gamma_log=0.1)
    assert not np.allclose(corrupted, _pass(0, corrupt_p=0.0)[0], atol=1e-4)


def test_intensity_scaling_multiplies_the_normalised_volume():
    base, _ = _pass(5)
    scaled, info = _pass(5, intensity_max=(0.9, 1.1))
    assert 0.9 <= info["intensity_max"] <= 1.1 and info["intensity_max"] != 1.0
    np.testing.assert_allclose(scaled, base * info["intensity_max"], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="intensity_max"):
        AugmentParams(intensity_max=(1.1, 0.9))


def test_transfer_head_with_input_dropout_has_the_paper_size_and_drops_the_latent():
    head = QCHead(9600, 10, 3, 0.7, dropout_at="input")
    assert isinstance(head.net[1], torch.nn.Dropout) and isinstance(head.net[2], torch.nn.Linear)
    # Table 1: 96,083 with BatchNorm's running statistics; 96,063 trainable
    assert n_parameters(head) == n_parameters(QCHead(9600, 10, 3, 0.7)) == 96_063
    head.train()
    torch.manual_seed(0)
    z = torch.randn(64, 9600)
    a, b = head(z), head(z)  # input dropout: two passes in training mode differ
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="dropout_at"):
        QCHead(10, dropout_at="output")


def test_scratch_sfcn_head_is_pool_dropout_conv_and_gives_class_logits():
    enc = SFCNEncoder([2, 4], 8)
    model = SFCNClassifier(enc, in_features=0, n_classes=3, dropout=0.68, head="sfcn").eval()
    assert n_parameters(model.head) == 8 * 3 + 3  # the 1x1x1 conv only
    x = torch.randn(2, 1, 16, 16, 16)
    logits = model(x)
    assert logits.shape == (2, 3)
    # the head is a conv on the average-pooled latent (independent computation)
    pooled = enc(x).mean(dim=(2, 3, 4))
    direct = pooled @ model.head.conv.weight.view(3, 8).T + model.head.conv.bias
    np.testing.assert_allclose(
        torch.softmax(logits, 1).detach(), torch.softmax(direct, 1).detach(), rtol=1e-5, atol=1e-6
    )


def test_the_transfer_head_must_be_an_mlp():
    with pytest.raises(ValueError, match="transfer.head"):
        BricoutParams(transfer={"head": "sfcn"})


def test_tiny_pipeline_runs_with_the_authors_settings(tmp_path, monkeypatch):
    """The end-to-end test again with every setting the paper profile changes on the code path."""
    original = BricoutParams.__init__

    def authors(self, **kw):
        original(self, **kw)
        self.augment.order, self.augment.corrupt_p, self.augment.intensity_max = "authors", 0.7, (0.9, 1.1)
        self.augment.scale_range = 0.0
        self.motion.rms_definition, self.motion.num_transforms = "code", (4, 7)
        self.transfer.dropout_at, self.scratch.head = "input", "sfcn"

    monkeypatch.setattr(BricoutParams, "__init__", authors)
    base.test_tiny_pipeline_end_to_end(tmp_path, monkeypatch)
    scratch = torch.load(tmp_path / "models/bricout/scratch/seed0/model.pt", weights_only=True)
    assert "head.conv.weight" in scratch  # the SFCN head trained and was saved
    transfer = torch.load(tmp_path / "models/bricout/transfer/seed0/model.pt", weights_only=True)
    assert "net.2.weight" in transfer  # Dropout, Linear, ... : the first linear layer moved to index 2
