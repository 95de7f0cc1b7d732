"""Paper 5 (Bricout et al.): soft labels, KL loss, AMP SCZ adapter, splits, synthetic pipeline."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from lightning_checks import fit_and_reload

from mriqa_lib.config import Settings, default_cohort_params
from mriqa_lib.data.ampscz import qc_class, read_qc_table, synthesis_eligible
from mriqa_lib.io import MriqaInputError
from mriqa_lib.methods.bricout.model import (
    bin_centres,
    expectation,
    kl_loss,
    soft_labels,
)
from mriqa_lib.methods.bricout.params import BricoutParams, EmbeddedQCParams, MotionParams


def test_soft_labels_sum_to_one_and_expectation_is_target():
    targets = np.linspace(0.0, 4.0, 41)
    lab = soft_labels(targets)  # paper: sigma 0.168, 50 bins on [-0.8, 4.8]
    assert lab.shape == (41, 50)
    assert torch.allclose(lab.sum(1), torch.ones(41), atol=1e-6)
    centres = torch.from_numpy(bin_centres()).float()
    width = 5.6 / 50
    assert np.allclose(np.diff(bin_centres()), width)
    exp = expectation(torch.log(lab.clamp_min(1e-30)), centres).numpy()
    assert np.all(np.abs(exp - targets) < width)
    # the mode sits in the bin that contains the target
    assert np.all(np.abs(centres.numpy()[lab.argmax(1).numpy()] - targets) <= width / 2 + 1e-6)


def test_kl_zero_for_equal_distributions_positive_otherwise():
    p = soft_labels([0.3, 2.2])
    logp = torch.log(p.clamp_min(1e-38))
    assert float(kl_loss(logp, p)) == pytest.approx(0.0, abs=1e-6)
    q = soft_labels([1.0, 3.0])
    assert float(kl_loss(torch.log(q.clamp_min(1e-38)), p)) > 1.0


def _write_caps(tmp_path, sites=("NC", "CM", "GA", "IR"), subjects_per_site=3):
    """A tiny AMP SCZ delivery: Clinica t1-linear CAPS (rec-norm and rec-nonorm images) and the
    authors' QC file (sub_id_gs, ses_id_gs, timepoint_gs, score, comment; site = 2 letters of the id)."""
    caps = tmp_path / "caps"
    rows = []
    rng = np.random.default_rng(0)
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [-96, -130, -74]
    for site in sites:
        for j in range(subjects_per_site):
            sub = f"{site}{j:05d}"
            for k, (ses, tp) in enumerate((("202301011", "baseline_arm_1"), ("202303011", "month_2_arm_1"))):
                folder = caps / "subjects" / f"sub-{sub}" / f"ses-{ses}" / "t1_linear"
                folder.mkdir(parents=True)
                data = np.zeros((24, 28, 24), np.float32)
                data[4:20, 4:24, 4:20] = 100 + rng.normal(0, 5, (16, 20, 16))
                for rec, gain in (("norm", 1.0), ("nonorm", 1.7)):
                    name = f"sub-{sub}_ses-{ses}_rec-{rec}_run-1_space-MNI152NLin2009cSym_res-1x1x1_T1w.nii.gz"
                    nib.save(nib.Nifti1Image(data * gain, affine), str(folder / name))
                score = int(rng.choice([2, 3, 4, 4]))
                comment = "slight motion" if (j == 0 and k == 0) else ""
                rows.append(
                    {"sub_id_gs": sub, "ses_id_gs": ses, "timepoint_gs": tp, "score": score, "comment": comment}
                )
    rows.append({"sub_id_gs": f"{sites[0]}99999", "ses_id_gs": "202305011", "timepoint_gs": "", "score": "-"})
    table = tmp_path / "AMPSCZ_scores.csv"
    pd.DataFrame(rows).fillna("").to_csv(table, index=False)
    return caps, table


def test_qc_table_validation_names_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,session,site,score,comments\n001,ses-01,A,5,\n")
    with pytest.raises(MriqaInputError, match="bad.csv"):
        read_qc_table(bad)
    missing = tmp_path / "missing.tsv"
    missing.write_text("subject\tsite\n001\tA\n")
    with pytest.raises(MriqaInputError, match="session"):
        read_qc_table(missing)


def test_eligibility_and_classes():
    frame = pd.DataFrame({"score": [4, 4, 3, 1, 4], "comments": ["", "Motion ringing", "", "", "fine"]})
    assert synthesis_eligible(frame).tolist() == [True, False, False, False, True]
    assert qc_class(np.array([1, 2, 3, 4])).tolist() == [0, 0, 1, 2]


def test_embedded_splits_hold_the_cohort_test_subjects_out(tmp_path):
    """Embedded scans table: QC and synthesis sites are disjoint, every subject is in one split,
    and the cohort's held-out test subjects are in the test split of whichever role they have."""
    from mriqa_lib.data.splits import held_out
    from mriqa_lib.methods.bricout.synthesis import scans_table, subject_manifests

    sites = [f"site{c}" for c in "ABC"]
    rows = [
        {"participant_id": f"sub-{i:03d}", "site": sites[i % 3], "split": "test" if i % 5 == 0 else "train"}
        for i in range(1, 31)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    held = held_out(tmp_path / "participants.tsv")
    bp = BricoutParams()
    bp.data.n_qc_sites = 1
    table = scans_table(Settings(cohort=default_cohort_params(), bricout=bp), tmp_path)
    assert (table.groupby("site").role.nunique() == 1).all() and table.role.value_counts()["qc"] == 10
    assert table.eligible.tolist() == (table.role == "synthesis").tolist()  # every embedded scan scores 4
    for role in ("synthesis", "qc"):
        part = table[table.role == role]
        assert set(part.split) == {"train", "val", "test"}
        assert (part[part.subject.isin(held)].split == "test").all()
    manifests = subject_manifests(table)
    assert manifests["."] == dict(zip(table.subject, table.split))
    assert set(manifests["samples"]) | set(manifests["qc"]) == set(table.subject)
    assert not set(manifests["samples"]) & set(manifests["qc"])


def test_synthesize_real_layout_splits_and_resume(tmp_path, monkeypatch):
    """Site-wise and subject-wise splits on a tiny CAPS tree; a rerun writes nothing new."""
    from mriqa_lib.stages import bricout as stage

    caps, table = _write_caps(tmp_path)
    bp = BricoutParams(progress=False, workers=1)
    bp.data.ampscz_caps, bp.data.ampscz_qc = str(caps), str(table)
    bp.data.n_qc_sites, bp.data.grid_mm, bp.data.crop = 1, 8.0, (16, 16, 16)
    bp.pretrain.samples_per_volume = 2
    bp.augment.elastic_max_displacement_mm = 4.0
    settings = Settings(cohort=default_cohort_params(), bricout=bp)
    monkeypatch.chdir(tmp_path)
    stage.synthesize(settings)
    out = tmp_path / "data/synthetic/bricout"
    scans = pd.read_csv(out / "scans.tsv", sep="\t", dtype=str)
    # no site in both roles, no subject in two splits (synthesis or QC)
    roles = scans.groupby("site").role.nunique()
    assert (roles == 1).all() and set(scans.role) == {"synthesis", "qc"}
    for role in ("synthesis", "qc"):
        part = scans[(scans.role == role) & (scans.split.notna())]
        assert (part.groupby("subject").split.nunique() == 1).all()
    # motion only on score-4 scans without a motion comment
    syn = pd.read_csv(out / "synthetic.tsv", sep="\t", dtype={"session": str})
    eligible = scans[scans.eligible == "True"]
    assert len(syn) == 2 * len(eligible)
    assert set(zip(syn.subject, syn.session)) == set(zip(eligible.subject, eligible.session))
    assert not any("motion" in c for c in scans[scans.eligible == "True"].comments.fillna(""))
    assert set(pd.read_csv(out / "qc.tsv", sep="\t").site) == set(scans[scans.role == "qc"].site)
    # resumable: the same settings rewrite no sample
    files = sorted((out / "samples").glob("*.nii.gz"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    stage.synthesize(settings)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    shape = nib.load(str(files[0])).shape
    assert shape == (16, 16, 16)


def test_pipeline_label_is_the_motion_rms_and_fast_motion_matches_torchio():
    from mriqa_lib.artifacts.motion import apply_torchio_motion
    from mriqa_lib.methods.bricout.data import augment, fast_motion

    rng = np.random.default_rng(0)
    img = np.zeros((24, 28, 20), np.float32)
    img[5:19, 6:22, 4:16] = 1.0
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    deg, tr = rng.uniform(-2, 2, (3, 3)), rng.uniform(-4, 4, (3, 3))
    times = np.array([0.2, 0.45, 0.7])
    ref, _ = apply_torchio_motion(img, deg, tr, times, [4.0] * 3)
    fast = fast_motion(img, 4.0, deg, tr, times)
    assert np.corrcoef((ref - img).ravel(), (fast - img).ravel())[0, 1] > 0.99
    bp = BricoutParams()
    bp.motion.clean_fraction = 0.0
    out, info = augment(img, 4.0, 3, bp.motion, bp.augment, (16, 16, 16))
    assert out.shape == (16, 16, 16)
    assert abs(info["rms"] - info["target_rms"]) <= bp.motion.tolerance_mm + 1e-9
    assert bp.motion.target_range[0] <= info["target_rms"] <= bp.motion.target_range[1]


def test_embedded_scores_are_unbalanced_like_table2():
    from mriqa_lib.methods.bricout.data import draw_degradations

    qp = EmbeddedQCParams()
    rows = draw_degradations(200, 0, qp)
    counts = np.bincount([r["score"] for r in rows], minlength=5)[1:] / 200
    assert np.allclose(counts, qp.score_fractions, atol=0.01)
    # worse scores have more hidden degradation on average (rater noise is moderate)
    bad = pd.DataFrame(rows).groupby("score").badness.mean()
    assert bad.is_monotonic_decreasing


def test_scorer_columns_from_saved_models(tmp_path):
    """load_scorer reads what the train stage writes (plain state dicts, weights_only) and scores a volume."""
    from mriqa_lib.io import Volume, write_json
    from mriqa_lib.methods.bricout.score import load_scorer
    from mriqa_lib.models.sfcn import SFCN, QCHead

    bp = BricoutParams()
    bp.model.channels, bp.model.latent = [2, 2, 2], 3
    bp.data.grid_mm, bp.data.crop = 8.0, (16, 16, 16)
    settings = Settings(cohort=default_cohort_params(), bricout=bp)
    torch.manual_seed(0)
    net = SFCN(bp.model.channels, bp.model.latent, bp.model.n_bins)
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "transfer" / "seed3").mkdir(parents=True)
    torch.save(net.state_dict(), tmp_path / "pretrain" / "sfcn.pt")
    in_features = 3 * 2 * 2 * 2
    torch.save(QCHead(in_features, 10).state_dict(), tmp_path / "transfer" / "seed3" / "model.pt")
    write_json(
        tmp_path / "config.json",
        {"in_features": in_features, "transfer": {"selected_seed": 3, "config": {"hidden": 10, "dropout": 0.7}}},
    )
    scorer = load_scorer(tmp_path, settings)
    data = np.zeros((40, 48, 40), np.float32)
    data[8:32, 10:38, 8:32] = 1.0
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    aff[:3, 3] = [-78, -112, -56]
    out = scorer.score(Volume(data, aff))
    assert out["bricout_qc_class"] in (0, 1, 2)
    assert -0.8 <= out["bricout_motion_rms"] <= 4.8
    assert sum(out[k] for k in out if k.startswith("bricout_qc_p")) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(MriqaInputError, match="config.json: not found"):
        load_scorer(tmp_path / "nothing", settings)


def test_precise_bn_recovers_population_statistics():
    """After PreciseBN the running mean/var are the averages over the training volumes, not the
    last batches' exponential average."""
    from types import SimpleNamespace

    from torch.utils.data import TensorDataset

    from mriqa_lib.methods.bricout.model import PreciseBN

    torch.manual_seed(0)
    bn = torch.nn.BatchNorm3d(1)
    module = torch.nn.Sequential(bn).eval()
    x = torch.randn(32, 1, 2, 2, 2) * 3 + 5
    bn.running_mean.fill_(-100.0)
    trainer = SimpleNamespace(sanity_checking=False, train_dataloader=SimpleNamespace(dataset=TensorDataset(x, x)))
    module.device = torch.device("cpu")
    PreciseBN(n_samples=32, batch_size=8).on_validation_start(trainer, module)
    assert float(bn.running_mean) == pytest.approx(float(x.mean()), abs=1e-4)
    assert bn.momentum == 0.1 and not module.training


def test_precise_bn_samples_the_whole_training_set():
    """The training set is stored volume by volume: PreciseBN must not use only the first volumes."""
    from types import SimpleNamespace

    from torch.utils.data import TensorDataset

    from mriqa_lib.methods.bricout.model import PreciseBN

    bn = torch.nn.BatchNorm3d(1)
    module = torch.nn.Sequential(bn).eval()
    x = torch.arange(64, dtype=torch.float32).view(64, 1, 1, 1, 1).expand(64, 1, 2, 2, 2).contiguous()
    trainer = SimpleNamespace(sanity_checking=False, train_dataloader=SimpleNamespace(dataset=TensorDataset(x, x)))
    module.device = torch.device("cpu")
    PreciseBN(n_samples=16, batch_size=4).on_validation_start(trainer, module)
    # 16 of 64 samples spread evenly: their mean is the whole set's (31.5); the first 16 give 7.5
    assert float(bn.running_mean) == pytest.approx(31.5, abs=0.5)


@pytest.mark.parametrize("kind", ["regressor", "transfer", "scratch"])
def test_lightning_modules_reload_from_checkpoint(tmp_path, kind):
    """Each LightningModule of paper 5 saves its hyper-parameters: a checkpoint written during fit
    rebuilds the same network with ``load_from_checkpoint`` (same weights, same outputs)."""
    from torch.utils.data import DataLoader, TensorDataset

    from mriqa_lib.methods.bricout.model import MotionRegressor, QCClassifier

    torch.manual_seed(0)
    x = torch.randn(4, 1, 8, 8, 8)
    if kind == "regressor":
        module = MotionRegressor([2, 2], 2, 10, (-0.8, 4.8), 0.168, 0.1, 1e-2, 0.0, 0.5, 1)
        y = torch.rand(4) * 3
    else:  # the latent of an 8^3 volume after two poolings: 2 channels x 2^3
        module = QCClassifier([2, 2], 2, 16, 4, 0.5, 1e-2, 0.0, kind == "transfer", [1.0, 2.0, 0.5])
        x = torch.randn(4, 16) if kind == "transfer" else x
        y = torch.tensor([0, 1, 2, 1])
    data = DataLoader(TensorDataset(x, y), batch_size=4)
    module, loaded = fit_and_reload(module, tmp_path, data, data, max_steps=1)
    assert loaded.hparams == module.hparams
    with torch.no_grad():
        assert torch.equal(module(x), loaded(x))


def _mni_volume(value: float = 1.0):
    """A small box 'brain' at 4 mm in the MNI-like frame the network grid expects."""
    data = np.zeros((40, 48, 40), np.float32)
    data[8:32, 10:38, 8:32] = value
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    aff[:3, 3] = [-78, -112, -56]
    return data, aff


def test_synthetic_calibration_scores_the_expected_rms(tmp_path):
    """Experiment 1 with a network whose prediction is known: all mass on the bin nearest to the
    volume's mean intensity, so the predicted RMS is that bin's centre and R^2 follows in closed form."""
    from mriqa_lib.io import save_nifti
    from mriqa_lib.methods.bricout.experiments import synthetic_calibration

    centres = torch.from_numpy(bin_centres()).float()

    def net(x):
        idx = (x.flatten(1).mean(1)[:, None] - centres[None]).abs().argmin(1)
        return torch.log(torch.nn.functional.one_hot(idx, len(centres)).float().clamp_min(1e-30))

    rows = []
    for i, (split, v, rms) in enumerate(
        [
            ("train", 9.0, 1.0),
            ("val", 0.5, 0.4),
            ("val", 2.0, 2.5),
            ("test", 1.0, 0.8),
            ("test", 3.0, 3.3),
            ("test", 4.0, 3.9),
        ]
    ):
        half = np.zeros((4, 4, 4), np.float32)
        half[:2] = 2 * v  # mean v (a constant image is refused)
        save_nifti(tmp_path / f"s{i}.nii.gz", half, np.eye(4))
        rows.append({"file": f"s{i}.nii.gz", "split": split, "subject": f"sub-{i}", "rms": rms})
    manifest = pd.DataFrame(rows)
    cal, metrics = synthetic_calibration(net, manifest, tmp_path, centres)
    assert cal.split.tolist() == ["val", "val", "test", "test", "test"]
    c = centres.numpy()
    expected = np.array([c[np.abs(c - v).argmin()] for v in (0.5, 2.0, 1.0, 3.0, 4.0)])
    assert np.allclose(cal.rms_pred, expected, atol=1e-5)
    true, pred = np.array([0.8, 3.3, 3.9]), expected[2:]
    r2 = 1 - ((true - pred) ** 2).sum() / ((true - true.mean()) ** 2).sum()
    assert metrics["synth_test_r2"] == pytest.approx(r2, rel=1e-5)
    assert metrics["synth_test_mae_mm"] == pytest.approx(np.abs(true - pred).mean(), rel=1e-5)
    assert metrics["synth_test_pearson_r2"] == pytest.approx(np.corrcoef(true, pred)[0, 1] ** 2, rel=1e-5)
    assert (metrics["n_synth_val"], metrics["n_synth_test"], metrics["synth_n_train"]) == (2, 3, 1)


def test_qc_scores_and_medians_over_seeds():
    """Experiment 2's numbers: perfect predictions score 1; predicting the majority class gives a
    balanced accuracy of 1/3 and its F1 2 P R / (P + R); the claim reads the median over seeds."""
    from mriqa_lib.methods.bricout.experiments import qc_metrics, qc_scores

    y = np.array([0, 0, 1, 2, 2, 2])
    perfect = qc_scores(y, y)
    assert perfect["bal_acc"] == 1.0 and perfect["f1_1/2"] == perfect["f1_3"] == perfect["f1_4"] == 1.0
    majority = qc_scores(y, np.full(6, 2))
    assert majority["bal_acc"] == pytest.approx(1 / 3) and majority["f1_4"] == pytest.approx(2 * 0.5 / 1.5)
    assert majority["n_pred_4"] == 6 and majority["accuracy"] == 0.5
    rows = [
        {"model": m, "seed": s, **qc_scores(y, p)}
        for m in ("transfer", "scratch")
        for s, p in enumerate((y, np.full(6, 2), np.array([0, 1, 1, 2, 2, 0])))
    ]
    metrics = qc_metrics(pd.DataFrame(rows))
    assert metrics["transfer_bal_acc_seed1"] == pytest.approx(1 / 3)
    assert metrics["transfer_bal_acc_median"] == pytest.approx(np.median([1, 1 / 3, (0.5 + 1 + 2 / 3) / 3]))
    assert metrics["scratch_bal_acc_median"] == metrics["transfer_bal_acc_median"]


def test_split_counts_and_parameter_table():
    """Table 2 counts classes, subjects and sites per split; Table 1 at paper width gives the paper's numbers."""
    from mriqa_lib.methods.bricout.experiments import (
        cost_metrics,
        flat_cost,
        parameter_table,
        split_counts,
    )

    qc = pd.DataFrame(
        {
            "split": ["train", "train", "val", "test", "test", "test"],
            "qc_class": [0, 2, 1, 2, 2, 1],
            "subject": ["a", "a", "b", "c", "d", "d"],
            "site": ["X", "X", "Y", "X", "Y", "Y"],
        }
    )
    syn = pd.DataFrame({"split": ["train"] * 4 + ["val"] * 2, "file": list("abcdef"), "subject": list("aabbcc")})
    counts, syn_counts = split_counts(qc, syn)
    test = counts.set_index("split").loc["test"]
    assert (test["1/2"], test["3"], test["4"], test.subjects, test.sites) == (0, 1, 2, 2, "X,Y")
    assert syn_counts.set_index("split").loc["train"].tolist() == [4, 2]
    bp = BricoutParams()
    bp.model.channels, bp.model.latent = [2, 2], 3
    bp.data.grid_mm, bp.data.crop = 8.0, (16, 16, 16)
    table = parameter_table(bp, 3 * 4 * 4 * 4, 10).set_index("setting")
    paper = table.iloc[0]
    assert (paper.encoder, paper.transfer_qc, paper.latent) == (2_950_336, 96_063, "64x5x6x5")  # paper Table 1
    assert table.iloc[1].latent == "3x4x4x4"
    cost = {"pretrain": {"wall_seconds": 2.0, "epochs": 3}, "transfer": {"wall_seconds": 1.0}}
    assert cost_metrics(cost) == {"cost_pretrain_wall_seconds": 2.0, "cost_transfer_wall_seconds": 1.0}
    assert flat_cost(cost) == {"pretrain_wall_seconds": 2.0, "pretrain_epochs": 3, "transfer_wall_seconds": 1.0}


@pytest.mark.parametrize("order", ["motion_first", "spatial_first"])
def test_pipeline_examples_follow_the_pipeline_order(tmp_path, order):
    """Fig. 2: the slices come in the pipeline's order, each pass has motion within tolerance of
    its target, and the example is a synthesis test scan."""
    from mriqa_lib.io import save_nifti
    from mriqa_lib.methods.bricout.experiments import pipeline_examples

    data, aff = _mni_volume()
    save_nifti(tmp_path / "t.nii.gz", data, aff)
    scans = pd.DataFrame(
        {
            "path": [str(tmp_path / "t.nii.gz")] * 3,
            "subject": ["sub-1", "sub-2", "sub-3"],
            "eligible": [True, False, True],
            "split": ["train", "test", "test"],
        }
    )
    bp = BricoutParams()
    bp.data.grid_mm, bp.data.crop = 8.0, (16, 16, 16)
    bp.augment.order, bp.augment.elastic_max_displacement_mm = order, 4.0
    bp.motion.clean_fraction = 1.0  # the examples always move, whatever the setting
    slices, labels = pipeline_examples(scans, bp)
    spatial = ["elastic", "flip", "scale"]
    moved = ["motion", *spatial] if order == "motion_first" else [*spatial, "motion"]
    steps = ["input", *moved, "bias", "gamma", "crop"]
    assert list(slices) == [f"ex{i}_{s}" for i in range(3) for s in steps]
    assert slices["ex0_crop"].shape == (16, 16)
    assert labels["subject"] == "sub-3"
    for info in labels["examples"].values():
        assert info["target_rms"] > 0 and abs(info["rms"] - info["target_rms"]) <= bp.motion.tolerance_mm + 1e-9


def test_named_seed_streams_keep_the_numbers_of_the_bare_keys():
    """The synthesis and degradation streams draw what SeedSequence([seed, 11, i, j]) and
    SeedSequence([seed, 5005]) drew, so synthetic sets made before the streams had names stay valid."""
    from mriqa_lib.methods.bricout.data import draw_degradations
    from mriqa_lib.methods.bricout.synthesis import sample_seeds

    old = [int(np.random.SeedSequence([7, 11, 2, j]).generate_state(1)[0]) for j in range(3)]
    assert sample_seeds(7, 2, 3) == old
    rng = np.random.default_rng(np.random.SeedSequence([7, 5005]))
    first = draw_degradations(1, 7, EmbeddedQCParams())[0]
    kind = int(rng.choice(4, p=EmbeddedQCParams().artifact_probs))
    assert first["dominant"] == ("motion", "noise", "ghosting", "bias")[kind]
    assert first["u"] == float(rng.beta(1.0, 2.5))


def _fourier_downsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Keep the central 1/factor of the k-space of every axis (the exact band-limited downsampling)."""
    k = np.fft.fftshift(np.fft.fftn(x))
    cut = tuple(slice(n // 2 - n // (2 * factor), n // 2 + n // (2 * factor)) for n in x.shape)
    return np.fft.ifftn(np.fft.ifftshift(k[cut])).real / factor**3


def test_motion_outside_the_acquisition_window_leaves_no_trace_on_the_grid():
    from mriqa_lib.artifacts.motion import window_times
    from mriqa_lib.methods.bricout.data import fast_motion

    rng = np.random.default_rng(1)
    img = rng.normal(size=(12, 12, 16)).astype(np.float32)
    deg, tr = rng.uniform(-3, 3, (2, 3)), rng.uniform(-6, 6, (2, 3))
    times = np.array([1 / 3, 2 / 3])  # both poses outside the central quarter of a 1 mm acquisition
    assert np.allclose(window_times(times, 4.0, 4.0), times)  # acquisition on the grid: unchanged
    out = fast_motion(img, 4.0, deg, tr, window_times(times, 1.0, 4.0))
    assert np.allclose(out, img, atol=1e-5)
    assert not np.allclose(fast_motion(img, 4.0, deg, tr, times), img, atol=1e-2)


def _fourier_upsample(x: np.ndarray, factor: int) -> np.ndarray:
    k = np.fft.fftshift(np.fft.fftn(x))
    pad = [((n * factor - n) // 2,) * 2 for n in x.shape]
    return np.fft.ifftn(np.fft.ifftshift(np.pad(k, pad))).real * factor**3


def test_windowed_motion_on_the_coarse_grid_is_fine_motion_downsampled():
    from mriqa_lib.artifacts.motion import window_times
    from mriqa_lib.methods.bricout.data import fast_motion

    # a 1 mm acquisition band-limited to the 4 mm grid, moved by whole 4 mm voxels: both grids resample exactly
    rng = np.random.default_rng(0)
    coarse = np.zeros((12, 12, 16))
    coarse[3:-3, 3:-3, 3:-3] = rng.uniform(0.5, 1.0, (6, 6, 10))
    fine = _fourier_upsample(coarse, 4).astype(np.float32)
    coarse = _fourier_downsample(fine, 4).astype(np.float32)
    deg = np.zeros((4, 3))
    tr = 4.0 * np.array([[1, -1, 1], [-1, 0, -1], [0, 1, 1], [-1, -1, 0]])
    times = np.array([0.2, 0.4, 0.55, 0.8])
    truth = _fourier_downsample(fast_motion(fine, 1.0, deg, tr, times), 4)
    windowed = fast_motion(coarse, 4.0, deg, tr, window_times(times, 1.0, 4.0))
    on_grid = fast_motion(coarse, 4.0, deg, tr, times)
    effect = np.linalg.norm(truth - coarse)
    assert np.linalg.norm(windowed - truth) / effect < 0.2
    assert np.linalg.norm(on_grid - truth) / effect > 1.0


def test_an_acquisition_on_the_grid_itself_changes_nothing_and_the_draw_is_recorded():
    from mriqa_lib.methods.bricout.data import motion_to_rms

    rng = np.random.default_rng(2)
    img = rng.normal(size=(12, 12, 16)).astype(np.float32)
    on_grid, info = motion_to_rms(img, 4.0, 2.0, 5, MotionParams(), "fast")
    same, info_same = motion_to_rms(img, 4.0, 2.0, 5, MotionParams(acquisition_mm=(4.0, 4.0)), "fast")
    assert np.allclose(same, on_grid) and info_same["rms"] == info["rms"]  # same poses, no window
    _, info_fine = motion_to_rms(img, 4.0, 2.0, 5, MotionParams(acquisition_mm=(0.8, 2.4)), "fast")
    assert 0.8 <= info_fine["acquisition_mm"] <= 2.4 and "acquisition_mm" not in info
