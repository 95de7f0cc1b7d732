"""Site calibration hooks of paper 1 (ecker: a reference bank of the site's scans) and paper 2 (zuo:
the density of m refitted on the site, Gaussian fallback for few scans). Tiny networks and volumes
built here; no trained pipeline models, no data/embedded."""

from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning on shared cores

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mriqa_lib.io import MriqaInputError, Volume
from mriqa_lib.methods.ecker.params import EckerParams
from mriqa_lib.methods.zuo.params import ZuoParams

torch.set_num_threads(1)


# ------------------------------------------------------------------------------- zuo: the density
def _site_m(n: int, seed: int = 0) -> np.ndarray:
    """n correlated 2-D features, as a site's latents might look."""
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal([1.5, -0.5], [[0.4, 0.15], [0.15, 0.2]], size=n)


def test_gaussian_fallback_integrates_to_one_and_matches_scipy():
    from scipy.stats import multivariate_normal

    from mriqa_lib.methods.zuo.calibrate import fit_gaussian

    g = fit_gaussian(_site_m(12), [5.0, 3.0])
    assert 0 < g.shrinkage <= 1  # Ledoit-Wolf shrinks the 12-scan covariance
    sd = np.sqrt(np.diag(g.covariance))
    axes = [np.linspace(mu - 9 * s, mu + 9 * s, 901) for mu, s in zip(g.mean, sd)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    integral = np.exp(g.log_density(mesh)).sum() * (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    assert integral == pytest.approx(1.0, abs=1e-3)
    ref = multivariate_normal(g.mean, g.covariance).logpdf(mesh[::997])
    assert np.allclose(g.log_density(mesh[::997]), ref, atol=1e-10)


def test_gaussian_thresholds_put_tau_of_its_own_samples_below():
    from mriqa_lib.methods.zuo.calibrate import fit_gaussian

    g = fit_gaussian(_site_m(20, seed=1), [5.0, 3.0])
    samples = np.random.default_rng(2).multivariate_normal(g.mean, g.covariance, size=200_000)
    logp = g.log_density(samples)
    assert set(g.thresholds) == {"5", "3"} and g.thresholds["3"] < g.thresholds["5"]
    assert (logp < g.thresholds["5"]).mean() == pytest.approx(0.05, abs=0.005)
    assert (logp < g.thresholds["3"]).mean() == pytest.approx(0.03, abs=0.005)


def test_density_kind_follows_the_number_of_scans():
    from mriqa_lib.methods.zuo.calibrate import FLOW_MIN_SCANS, GaussianDensity, fit_density
    from mriqa_lib.methods.zuo.flow import DensityModel, percentile_thresholds

    p = ZuoParams(flow_transforms=2, flow_hidden=(8,), flow_steps=20)
    few, reason = fit_density(_site_m(FLOW_MIN_SCANS - 1), p)
    assert isinstance(few, GaussianDensity) and f"{FLOW_MIN_SCANS - 1} scans < {FLOW_MIN_SCANS}" in reason
    many, reason = fit_density(_site_m(FLOW_MIN_SCANS), p)
    assert isinstance(many, DensityModel) and "RealNVP" in reason
    # a lowered threshold refits the flow, with the pipeline's empirical percentile thresholds
    m = _site_m(8)
    flow, _ = fit_density(m, p, flow_min_scans=8)
    assert isinstance(flow, DensityModel)
    assert flow.thresholds == percentile_thresholds(flow.log_density(m), p.taus)
    with pytest.raises(MriqaInputError, match="at least 3 scans"):
        fit_density(m[:2], p)
    with pytest.raises(MriqaInputError, match="no spread"):
        fit_density(np.ones((5, 2)), p)


# ------------------------------------------------------------------------- zuo: scorer round trip
def _head(seed: int, noise: float) -> Volume:
    """An ellipsoid head on the reference grid with Gaussian noise (a tiny T1w stand-in)."""
    from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE

    rng = np.random.default_rng(seed)
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in REF_SHAPE], indexing="ij"))
    c = (np.array(REF_SHAPE) - 1)[:, None, None, None] / 2
    axes = np.array([35, 45, 35])[:, None, None, None] * (1 + 0.05 * seed)
    head = (np.sum(((idx - c) / axes) ** 2, 0) < 1) * 800.0
    data = (head + rng.normal(0, noise, REF_SHAPE)).clip(0).astype(np.float32)
    return Volume(data, REF_AFFINE.copy(), path=f"site/sub-{seed:02d}_T1w.nii.gz")


@pytest.fixture(scope="module")
def zuo_site(tmp_path_factory):
    """A zuo scorer (tiny encoder, flow fitted on noise) and 4 site scans."""
    from mriqa_lib.methods.zuo.flow import fit_flow
    from mriqa_lib.methods.zuo.inference import save_model
    from mriqa_lib.methods.zuo.score import load_scorer
    from mriqa_lib.models.artifact_encoder import build_encoder

    p = ZuoParams(width=4, flow_transforms=2, flow_hidden=(8,), flow_steps=20, finetune_steps=3)
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("zuo_model")
    save_model(model_dir, build_encoder("small", p.width).eval(), fit_flow(_site_m(40), p), p)
    settings = SimpleNamespace(zuo=p, trainer=SimpleNamespace(threads=1))
    return settings, (lambda: load_scorer(model_dir, settings)), [_head(s, 10 + 8 * s) for s in range(4)]


@pytest.mark.parametrize("flow_min_scans", [50, 3])
def test_zuo_use_calibration_round_trips(zuo_site, tmp_path, flow_min_scans):
    from mriqa_lib.methods.zuo.calibrate import calibrate, fit_density, site_latents
    from mriqa_lib.methods.zuo.prep import prepare_volume

    settings, new_scorer, volumes = zuo_site
    scorer = new_scorer()
    summary = calibrate(scorer, volumes, tmp_path, settings, flow_min_scans=flow_min_scans)
    expect_kind = "gaussian_ledoit_wolf" if flow_min_scans > len(volumes) else "realnvp"
    assert json.loads(json.dumps(summary)) == summary  # JSON-able, as the calibration manifest stores it
    assert summary["density"] == expect_kind and summary["n_scans"] == 4 and str(len(volumes)) in summary["reason"]
    assert (tmp_path / "density.json").exists() and (tmp_path / "latents.tsv").exists()
    before = scorer.score(volumes[0])
    scorer.use_calibration(tmp_path)
    after = scorer.score(volumes[0])
    assert set(after) == set(before)  # same output columns as without calibration
    m = site_latents(scorer, volumes)
    prepared = [prepare_volume(v, scorer.p) for v in volumes]  # calibrate prepares once and shares it
    np.testing.assert_array_equal(site_latents(scorer, volumes, prepared), m)
    density, _ = fit_density(m, scorer.p, flow_min_scans)  # the in-memory object (seeded fit)
    assert after["zuo_logdensity"] == pytest.approx(float(density.log_density(m[0])[0]), abs=1e-5)
    for tau, thr in density.thresholds.items():
        assert after[f"zuo_threshold{tau}"] == pytest.approx(thr, abs=1e-9)
        assert after[f"zuo_flag{tau}"] == (after["zuo_logdensity"] < after[f"zuo_threshold{tau}"])


def test_zuo_finetuning_lowers_the_contrastive_loss_on_the_site_and_travels_with_the_calibration(zuo_site, tmp_path):
    from mriqa_lib.methods.zuo.calibrate import calibrate, site_latents
    from mriqa_lib.methods.zuo.contrastive import ContrastiveSampler, EncoderModule
    from mriqa_lib.methods.zuo.prep import band_slices, prepare_volume

    settings, new_scorer, volumes = zuo_site
    scorer = new_scorer()
    p = scorer.p.model_copy(update={"finetune_steps": 40})
    scorer.p = p
    site = p.model_copy(update={"n_negatives_volume": 0, "batch_volumes": len(volumes), "steps": 8})
    per_volume = [band_slices(prepare_volume(v, p), p) for v in volumes]
    batches = ContrastiveSampler({o: np.stack([s[o] for s in per_volume]) for o in per_volume[0]}, site, seed=99)

    def site_loss(encoder) -> float:  # Eq. 1 on batches the fine-tuning never drew (another seed)
        module = EncoderModule(site)
        module.encoder = encoder
        with torch.no_grad():
            return float(np.mean([module.batch_loss(batches[i]).item() for i in range(len(batches))]))

    before, m_before = site_loss(scorer.encoder), site_latents(scorer, volumes)
    summary = calibrate(scorer, volumes, tmp_path, settings)
    assert summary["finetuned"]["steps"] == 40 and "encoder.pt" in summary["files"]
    assert site_loss(scorer.encoder) < before
    m_after = site_latents(scorer, volumes)
    assert not np.allclose(m_after, m_before)
    fresh = new_scorer()  # the trained model, untouched on disk
    np.testing.assert_allclose(site_latents(fresh, volumes), m_before, atol=1e-6)
    fresh.use_calibration(tmp_path)
    np.testing.assert_allclose(site_latents(fresh, volumes), m_after, atol=1e-6)
    (tmp_path / "encoder.pt").write_bytes(b"damaged")
    with pytest.raises(MriqaInputError, match="encoder.pt: cannot load the fine-tuned encoder"):
        new_scorer().use_calibration(tmp_path)


def test_zuo_calibration_files_missing_or_damaged_name_the_file(zuo_site, tmp_path):
    from mriqa_lib.methods.zuo.calibrate import calibrate

    settings, new_scorer, volumes = zuo_site
    scorer = new_scorer()
    with pytest.raises(MriqaInputError, match="density.json: file not found"):
        scorer.use_calibration(tmp_path)
    (tmp_path / "density.json").write_text("{not json")
    with pytest.raises(MriqaInputError, match="density.json: invalid JSON"):
        scorer.use_calibration(tmp_path)
    (tmp_path / "density.json").write_text('{"kind": "gaussian_ledoit_wolf", "mean": [0, 0]}')
    with pytest.raises(MriqaInputError, match="density.json: not a calibrated density"):
        scorer.use_calibration(tmp_path)
    flow_dir = tmp_path / "flow"
    flow_dir.mkdir()
    calibrate(scorer, volumes[:3], flow_dir, settings, flow_min_scans=3)
    (flow_dir / "flow.pt").write_bytes(b"damaged")
    with pytest.raises(MriqaInputError, match="flow.pt: cannot load"):
        scorer.use_calibration(flow_dir)


# ----------------------------------------------------------------------------- ecker: the bank
def _ecker_scorer():
    from mriqa_lib.methods.ecker.score import Scorer
    from mriqa_lib.models.resnet_simclr import SimCLRNet

    p = EckerParams(n_slices=2, slice_step=1, img_size=16, width=0.125, n_refs=2)
    torch.manual_seed(0)
    net = SimCLRNet(1, p.width, p.proj_dim, p.conv1_stride).eval()
    rng = np.random.default_rng(0)
    d = net.feature_dim
    trained = {k: rng.random((3, 2, d)) for k in ("hq", "motion", "noise", "respiratory")}
    meta = {"participant_id": np.array(["a", "b", "c"]), "sex": np.array(["M", "F", "M"])}
    refs = {**trained, **meta, "height": np.array([170.0, 160, 180]), "weight": np.array([70.0, 60, 80])}
    return Scorer(net, p, refs, False)


def _scan(seed: int, folder: str = "site") -> Volume:
    """A smooth blob with noise, 24 x 20 x 6 voxels of 1 mm."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, 24), np.linspace(-1, 1, 20), indexing="ij")
    blob = np.exp(-(x**2 + y**2) / (0.2 + 0.05 * seed))[..., None] * np.ones(6)
    data = (blob + 0.05 * rng.random((24, 20, 6))).astype(np.float32)
    return Volume(data, np.eye(4), path=f"{folder}/sub-{seed:02d}/anat/sub-{seed:02d}_T1w.nii.gz")


def test_ecker_bank_holds_the_site_scans_and_their_pipeline_lq_versions(tmp_path):
    from mriqa_lib.methods.ecker import data as D
    from mriqa_lib.methods.ecker.calibrate import calibrate
    from mriqa_lib.methods.ecker.simclr import embed

    scorer, volumes = _ecker_scorer(), [_scan(s) for s in range(3)]
    summary = calibrate(scorer, volumes, tmp_path, SimpleNamespace(ecker=EckerParams(seed=7)))
    assert json.loads(json.dumps(summary)) == summary
    assert summary["n_scans"] == 3 and summary["lq_kinds"] == ["motion", "noise", "respiratory"]
    assert summary["metadata_known"] == 0  # no table: unknown metadata, matching uses all references
    bank = dict(np.load(tmp_path / "references.npz"))
    assert set(bank) == {"hq", "motion", "noise", "respiratory", "participant_id", "sex", "height", "weight"}
    assert bank["participant_id"].tolist() == ["sub-00", "sub-01", "sub-02"]
    assert all(bank[k].shape == (3, 2, scorer.net.feature_dim) for k in ("hq", "motion", "noise", "respiratory"))
    assert np.isnan(bank["height"]).all() and (bank["sex"] == "").all()
    p7 = scorer.p.model_copy(update={"seed": 7})
    for i, vol in enumerate(volumes):  # HQ: the scorer's embedding; LQ: the pipeline's reference recipe
        raw, spacing = D.volume_slices(vol, scorer.p, False)
        assert np.allclose(bank["hq"][i], embed(scorer.net, D.prepare_slices(raw, scorer.p)), atol=1e-5)
        moved = D.degrade(raw, "motion", p7, D.case_seed(7, "ref", "motion", f"sub-{i:02d}"), spacing)
        assert np.allclose(bank["motion"][i], embed(scorer.net, D.prepare_slices(moved, p7)), atol=1e-5)


def test_ecker_site_scan_is_nearer_hq_than_its_motion_corrupted_copy(tmp_path):
    from mriqa_lib.artifacts import apply_artifact
    from mriqa_lib.methods.ecker.calibrate import calibrate

    scorer, scan = _ecker_scorer(), _scan(1)
    calibrate(scorer, [scan], tmp_path, SimpleNamespace(ecker=EckerParams()))
    scorer.use_calibration(tmp_path)
    moved, _ = apply_artifact("motion", scan.data, severity=4.0, seed=1, spacing=(1.0, 1.0, 1.0))
    own = scorer.score(scan)
    copy = scorer.score(Volume(moved, scan.affine, path="moved.nii.gz"))
    assert own["ecker_sim_hq"] == pytest.approx(1.0, abs=1e-5)  # the scan is its own HQ reference
    assert copy["ecker_sim_hq"] < own["ecker_sim_hq"] - 1e-4


def test_ecker_use_calibration_round_trips_with_bids_metadata(tmp_path):
    from mriqa_lib.methods.ecker.calibrate import calibrate, site_bank
    from mriqa_lib.methods.ecker.score import Scorer

    root = tmp_path / "bids"
    root.mkdir()
    rows = ["participant_id\tsex\theight\tweight", "sub-00\tF\t165\t60", "sub-01\tM\t180\t85"]
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    scorer, volumes = _ecker_scorer(), [_scan(s, str(root)) for s in range(3)]
    settings = SimpleNamespace(ecker=EckerParams(seed=2))
    summary = calibrate(scorer, volumes, tmp_path, settings)
    assert summary["metadata_known"] == 2  # sub-02 is not in the table
    bank, _ = site_bank(scorer, volumes, 2)
    assert bank["sex"].tolist() == ["F", "M", ""] and bank["height"][:2].tolist() == [165.0, 180.0]
    given, _ = site_bank(scorer, volumes, 2, {volumes[2].path: {"sex": "female", "height": 150, "weight": 50}})
    assert given["sex"].tolist() == ["F", "M", "F"] and given["weight"].tolist()[1:] == [85.0, 50.0]
    memory = Scorer(scorer.net, scorer.p, bank, False)
    scorer.use_calibration(tmp_path)
    for kw in ({}, {"sex": "M", "height": 178.0, "weight": 80.0}):
        assert scorer.score(volumes[2], **kw) == memory.score(volumes[2], **kw)


def test_ecker_calibration_file_missing_or_damaged_names_the_file(tmp_path):
    scorer = _ecker_scorer()
    with pytest.raises(MriqaInputError, match="references.npz: file not found"):
        scorer.use_calibration(tmp_path)
    (tmp_path / "references.npz").write_bytes(b"damaged")
    with pytest.raises(MriqaInputError, match="references.npz: cannot read"):
        scorer.use_calibration(tmp_path)
    np.savez(tmp_path / "references.npz", hq=np.zeros((1, 2, 3)))
    with pytest.raises(MriqaInputError, match="references.npz: missing"):
        scorer.use_calibration(tmp_path)
