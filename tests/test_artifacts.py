"""Artifact library checked against independent truth (closed forms, Monte Carlo, SimpleITK /
TorchIO's own records, k-space identities), plus identity at zero severity and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mriqa_lib.artifacts import REGISTRY, apply_artifact, geometry, kspace, list_artifacts, masks, motion, noise, rigid


def phantom(shape, seed=0):
    """Head-like phantom: ellipsoid 'scalp' + brighter 'brain' + a few blobs; zero background."""
    rng = np.random.default_rng(seed)
    g = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum((gi / 0.9) ** 2 for gi in g))
    x = 0.5 * (r < 1.0) + 0.4 * (r < 0.8)
    for _ in range(4):
        c = rng.uniform(-0.4, 0.4, size=len(shape))
        x = x + 0.3 * (np.sqrt(sum((gi - ci) ** 2 for gi, ci in zip(g, c))) < 0.15)
    return x.astype(np.float32)


IMG2 = phantom((48, 56))
IMG3 = phantom((32, 40, 36))


# ------------------------------------------------------------------------------------------
# registry-wide properties
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REGISTRY))
@pytest.mark.parametrize("ndim", [2, 3])
def test_zero_severity_is_identity(name, ndim):
    if ndim not in REGISTRY[name].dims:
        pytest.skip("dimensionality not supported")
    x = IMG2 if ndim == 2 else IMG3
    out, info = apply_artifact(name, x, severity=0.0, seed=3)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert np.array_equal(out, x)
    assert info["severity"] == 0.0


@pytest.mark.parametrize("name", list(REGISTRY))
@pytest.mark.parametrize("ndim", [2, 3])
def test_deterministic_and_works(name, ndim):
    spec = REGISTRY[name]
    if ndim not in spec.dims:
        pytest.skip("dimensionality not supported")
    x = IMG2 if ndim == 2 else IMG3
    x_before = x.copy()
    a, pa = apply_artifact(name, x, seed=7, spacing=2.0)
    b, pb = apply_artifact(name, x, seed=7, spacing=2.0)
    assert np.array_equal(x, x_before), "input modified"
    assert a.tobytes() == b.tobytes() and pa == pb
    assert a.shape == x.shape and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert isinstance(pa["severity"], float) and pa["severity"] > 0
    assert not np.array_equal(a, x), "default severity changed nothing"
    import json

    json.dumps(pa)  # the realised parameters are JSON-serialisable


def test_global_rng_untouched():
    import torch

    np.random.seed(123)
    torch.manual_seed(123)
    ref_np, ref_t = np.random.random(), torch.rand(1).item()
    np.random.seed(123)
    torch.manual_seed(123)
    for name in REGISTRY:
        apply_artifact(name, IMG2, seed=1)
    assert np.random.random() == ref_np and torch.rand(1).item() == ref_t


@pytest.mark.parametrize(
    "name",
    [
        "respiratory",
        "gaussian_noise",
        "rician_noise",
        "ghosting",
        "spike",
        "bias_field",
        "blur",
        "non_t1w_contrast",
        "gamma",
        "remove_side",
        "pixel_shift",
    ],
)
def test_severity_sweep_is_monotone(name):
    spec = REGISTRY[name]
    sev = np.array([0.25, 0.5, 1.0]) * spec.default
    dev = [np.abs(apply_artifact(name, IMG2, severity=s, seed=2)[0] - IMG2).mean() for s in sev]
    assert dev[0] < dev[1] < dev[2]


def test_registry_errors():
    with pytest.raises(KeyError, match="unknown artifact"):
        apply_artifact("nope", IMG2)
    with pytest.raises(ValueError, match="valid range"):
        apply_artifact("ghosting", IMG2, severity=2.0)
    with pytest.raises(TypeError, match="unknown parameter"):
        apply_artifact("blur", IMG2, sigma=3)
    with pytest.raises(ValueError, match="2-D or 3-D"):
        apply_artifact("blur", np.zeros(5))
    for spec in list_artifacts():
        assert spec.unit and spec.severity and spec.valid_range[0] <= spec.default <= spec.valid_range[1]


# ------------------------------------------------------------------------------------------
# Jenkinson RMS
# ------------------------------------------------------------------------------------------
def _mc_rms(a, radius, center, n=400_000, seed=0):
    """Monte-Carlo RMS of |A x - x| over a ball (independent of the closed form)."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = center + d * radius * rng.uniform(size=(n, 1)) ** (1 / 3)
    moved = pts @ a[:3, :3].T + a[:3, 3]
    return float(np.sqrt(np.mean(np.sum((moved - pts) ** 2, axis=1))))


def test_rms_pure_translation_equals_norm():
    for t in ([3.0, 0, 0], [1.0, -2.0, 2.0], [0.01, 0.02, -0.03]):
        a = np.eye(4)
        a[:3, 3] = t
        for c in ([0, 0, 0], [10.0, -5.0, 3.0]):
            assert rigid.jenkinson_rms(a, radius=80, center=c) == pytest.approx(np.linalg.norm(t), rel=1e-12)


@pytest.mark.parametrize("angle", [0.5, 2.0, 10.0, 45.0])
def test_rms_rotation_about_centre_closed_form(angle):
    rng = np.random.default_rng(int(angle * 10))
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    c = np.array([12.0, -7.0, 30.0])
    r = Rotation.from_rotvec(np.radians(angle) * axis).as_matrix()
    a = np.eye(4)
    a[:3, :3] = r
    a[:3, 3] = c - r @ c  # rotation about c
    expected = 80.0 * math.sqrt(4 * (1 - math.cos(math.radians(angle))) / 5)
    assert rigid.jenkinson_rms(a, radius=80.0, center=c) == pytest.approx(expected, rel=1e-10)


def test_rms_matches_monte_carlo_for_general_affine():
    rng = np.random.default_rng(5)
    a = np.eye(4)
    a[:3, :3] = Rotation.from_rotvec(rng.normal(0, 0.1, 3)).as_matrix() @ np.diag([1.02, 0.97, 1.0])
    a[:3, 3] = rng.normal(0, 3, 3)
    c = np.array([5.0, -3.0, 8.0])
    assert rigid.jenkinson_rms(a, radius=82.5, center=c) == pytest.approx(_mc_rms(a, 82.5, c), rel=5e-3)
    b = np.eye(4)
    b[:3, 3] = [1.0, 2.0, 0.0]
    # relative transform a b^-1
    assert rigid.jenkinson_rms(a, b, 80.0, c) == pytest.approx(_mc_rms(a @ np.linalg.inv(b), 80.0, c), rel=5e-3)


def test_euler_convention_matches_simpleitk():
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    for _ in range(5):
        deg = rng.uniform(-30, 30, 3)
        tr = sitk.Euler3DTransform()
        tr.SetRotation(*np.radians(deg).tolist())
        np.testing.assert_allclose(rigid.euler_to_matrix(deg), np.array(tr.GetMatrix()).reshape(3, 3), atol=1e-12)


# ------------------------------------------------------------------------------------------
# rigid motion (TorchIO underneath)
# ------------------------------------------------------------------------------------------
def test_motion_sidecar_matches_torchio_history():
    import torch
    import torchio as tio
    from torchio.data.io import nib_to_sitk

    spacing = (2.0, 2.0, 2.5)
    out, p = apply_artifact("motion", IMG3, severity=1.5, seed=11, spacing=spacing)
    assert abs(p["severity"] - 1.5) <= 0.02 and p["rms_mm"] == p["severity"]
    (hist,) = p["torchio_history"]
    assert hist["name"] == "Motion"
    deg, trans, times = (np.array(hist[k]) for k in ("degrees", "translation", "times"))
    # TorchIO's own pose construction (SimpleITK Euler3DTransform) on the image it saw
    affine = motion.centered_affine(IMG3.shape, spacing)
    simg = nib_to_sitk(torch.from_numpy(IMG3)[None], affine, force_3d=True)
    centre = np.array(simg.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in IMG3.shape]))
    np.testing.assert_allclose(centre, 0.0, atol=1e-9)  # world origin = grid centre
    transforms = tio.Motion(
        degrees=deg, translation=trans, times=times, image_interpolation="linear"
    ).get_rigid_transforms(deg, trans, simg)
    mats = []
    for t in transforms[1:]:  # first is identity
        r = np.array(t.GetMatrix()).reshape(3, 3)
        c = np.array(t.GetCenter())
        a = np.eye(4)
        a[:3, :3] = r
        a[:3, 3] = np.array(t.GetTranslation()) + c - r @ c
        mats.append(a)
    mats = np.array(mats)
    np.testing.assert_allclose(mats, np.array(p["poses"]), atol=1e-9)
    rms_each = [_mc_rms(a, 80.0, centre, n=200_000) for a in mats]
    assert np.mean(rms_each) == pytest.approx(p["rms_mm"], rel=1e-2)
    assert rigid.rms_mean_from_reference(mats, 80.0, centre) == pytest.approx(p["rms_mm"], abs=1e-9)
    # replaying TorchIO's record gives the same bytes
    subj = tio.Subject(image=tio.ScalarImage(tensor=torch.from_numpy(IMG3)[None], affine=affine))
    replay = tio.Motion(degrees=deg, translation=trans, times=times, image_interpolation="linear")(subj)
    assert np.array_equal(replay["image"].data[0].numpy(), out)
    assert not np.allclose(out, IMG3)


def test_motion_sampler_hits_target_both_definitions():
    rng = np.random.default_rng(0)
    for definition, radius in (("paper", 80.0), ("code", 82.5)):
        for target in (0.05, 1.0, 4.0):
            d = motion.sample_motion_for_rms(target, rng, definition=definition)
            poses = rigid.pose_matrices(d["degrees"], d["translation"])
            if definition == "paper":
                val = np.mean([_mc_rms(a, radius, np.zeros(3), n=50_000) for a in poses])
                assert abs(val - target) < 0.02 + 0.01 * target  # Monte Carlo error
            else:
                val = rigid.rms_successive(poses, radius)
            assert abs(d["rms"] - target) <= 0.02
            assert 2 <= d["num_transforms"] <= 8
            assert np.abs(d["degrees"]).max() <= min(target / 3, 1.0) + 1e-12
            assert np.abs(d["translation"]).max() <= target + 1e-12


def test_motion_code_variant_and_explicit_poses():
    t = np.array([[0.0, 3.0, 4.0]])
    out, p = apply_artifact("motion", IMG3, seed=0, degrees=[[0, 0, 0]], translation=t, times=[0.7])
    assert p["rms_mm"] == pytest.approx(5.0) and p["rms_successive_mm"] == pytest.approx(5.0)
    out, p = apply_artifact("motion", IMG3, severity=2.0, seed=1, rms_definition="code")
    assert abs(p["rms_successive_mm"] - 2.0) <= 0.02 and p["severity"] == p["rms_successive_mm"]
    # the k-space centre segment is the identity pose (TorchIO's sort_spectra)
    n = IMG3.shape[-1]
    (centre_seg,) = [s for s in p["kspace_segments"] if s["start"] <= n // 2 < s["stop"]]
    assert centre_seg["pose"] == 0


def test_motion_2d_is_not_a_noop():
    out, p = apply_artifact("motion", IMG2, severity=2.0, seed=4)
    assert np.abs(out - IMG2).mean() > 1e-3
    assert np.all(np.array(p["degrees"])[:, 1:] == 0) and np.all(np.array(p["translation_mm"])[:, 0] == 0)
    out3, p3 = apply_artifact("motion", IMG2[:, :, None], severity=2.0, seed=4)  # (H, W, 1) slice
    assert np.array_equal(out3[:, :, 0], out)


# ------------------------------------------------------------------------------------------
# respiratory motion
# ------------------------------------------------------------------------------------------
def test_respiratory_constant_displacement_is_translation():
    x = phantom((40, 48))
    out, p = motion.respiratory_motion(
        x, 3.0, spacing=(1.5, 1.0), period_lines=np.inf, phase=np.pi / 2, pe_axis=0, direction_axis=0, output="real"
    )
    np.testing.assert_allclose(out, np.roll(x, 2, axis=0), atol=1e-5)  # 3 mm = 2 voxels of 1.5 mm


def test_respiratory_each_line_sees_its_displacement():
    x = phantom((32, 24, 20)).astype(np.float64)
    out, p = motion.respiratory_motion(
        x, 2.0, seed=1, spacing=1.0, period_lines=8, pe_axis=1, direction_axis=0, output="real"
    )
    k_exp = np.zeros(x.shape, complex)
    fx = np.fft.fft(x, axis=0)
    for j in range(x.shape[1]):  # line j is acquired with the object translated by d_j (independent shift)
        d = 2.0 * math.sin(2 * math.pi * j / 8 + p["phase_rad"])
        shifted = np.fft.ifft(fx * np.exp(-2j * np.pi * np.fft.fftfreq(32)[:, None, None] * d), axis=0)
        k_exp[:, j] = kspace.fftnc(shifted)[:, j]
    np.testing.assert_allclose(out, np.real(kspace.ifftnc(k_exp)), atol=2e-5)


# ------------------------------------------------------------------------------------------
# noise
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("snr_db", [10.0, 0.0, -10.0])
def test_rician_snr_hits_target(snr_db):
    x = phantom((64, 64, 64))
    out, p = apply_artifact("rician_noise", x, seed=1, snr_db=snr_db)
    fg = x > 0.1 * x.max()
    signal = x[fg].mean()
    sigma_fg = np.sqrt((np.mean(out[fg].astype(np.float64) ** 2) - np.mean(x[fg].astype(np.float64) ** 2)) / 2)
    bg = x == 0
    sigma_bg = out[bg].mean() / np.sqrt(np.pi / 2)  # Rayleigh background
    for sigma in (sigma_fg, sigma_bg):
        assert abs(20 * np.log10(signal / sigma) - snr_db) < 0.5
    assert abs(p["snr_db_measured"] - snr_db) < 0.5 and p["snr_db"] == pytest.approx(snr_db)


def test_snr_levels_and_gaussian_sigma():
    lv = noise.snr_levels_db()
    assert len(lv) == 41 and lv[0] == 10 and lv[-1] == -10 and np.allclose(np.diff(lv), -0.5)
    x = phantom((64, 64, 32))
    out, p = apply_artifact("gaussian_noise", x, severity=0.25, seed=0)
    assert np.std(out - x) == pytest.approx(0.25 * (x.max() - x.min()), rel=0.01)


def test_regional_noise_only_in_region():
    x = phantom((40, 40, 40))
    out, p = apply_artifact("regional_noise", x, severity=1.0, seed=2, box=[[5, 15], [10, 30], [0, 40]])
    inside = np.zeros(x.shape, bool)
    inside[5:15, 10:30, :] = True
    assert np.array_equal(out[~inside], x[~inside]) and not np.allclose(out[inside], x[inside])
    m = x > 1.0
    out, p = apply_artifact("regional_noise", x, severity=0.5, seed=2, mask=m, kind="gaussian")
    assert np.array_equal(out[~m], x[~m]) and p["region_fraction"] == pytest.approx(m.mean())


# ------------------------------------------------------------------------------------------
# k-space
# ------------------------------------------------------------------------------------------
def test_fft_helpers():
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 20)) + 1j * rng.standard_normal((16, 20))
    k = kspace.fft2c(x)
    assert np.sum(np.abs(k) ** 2) == pytest.approx(np.sum(np.abs(x) ** 2))  # orthonormal
    np.testing.assert_allclose(kspace.ifft2c(k), x, atol=1e-12)
    delta = np.zeros((16, 20))
    delta[8, 10] = 1.0  # the centred origin
    np.testing.assert_allclose(kspace.fft2c(delta), np.full((16, 20), 1 / np.sqrt(320)), atol=1e-12)
    np.testing.assert_allclose(kspace.fft2c_torch(torch.from_numpy(x)).numpy(), k, atol=1e-10)
    np.testing.assert_allclose(kspace.ifftnc_torch(torch.from_numpy(k)).numpy(), x, atol=1e-10)


@pytest.mark.parametrize("accel,cf", [(4, 0.08), (8, 0.04)])
def test_masks_acceleration_and_centre(accel, cf):
    n = 368
    for kind, fn in (("equispaced", kspace.equispaced_mask), ("random", kspace.random_mask)):
        realised = []
        for seed in range(30):
            m = fn(n, accel, cf, seed)
            n_low = round(n * cf)
            centre = np.arange((n - n_low + 1) // 2, (n - n_low + 1) // 2 + n_low)
            assert m[centre].all() and n // 2 in centre
            realised.append(n / m.sum())
        if kind == "equispaced":
            assert all(abs(r - accel) / accel < 0.05 for r in realised)
        else:
            assert abs(np.mean(realised) - accel) / accel < 0.05
    assert kspace.default_center_fraction(4) == pytest.approx(0.08)
    assert kspace.default_center_fraction(8) == pytest.approx(0.04)


def test_undersample_zero_filled_and_multicoil():
    x = phantom((64, 64))
    out, p = apply_artifact("undersample", x, seed=0, acceleration=4, mask_type="equispaced")
    assert abs(p["acceleration_realised"] - 4) < 0.2 and p["center_lines"] == round(64 * 0.08)
    mask = np.zeros(64, bool)
    mask[p["sampled_lines"]] = True
    ref = np.abs(np.fft.ifft(np.fft.fft(x, axis=1) * np.fft.ifftshift(mask)[None], axis=1))  # independent
    np.testing.assert_allclose(out, ref, atol=1e-5)
    sens = kspace.coil_sensitivities((40, 48, 24), n_coils=8, seed=1)
    np.testing.assert_allclose((np.abs(sens) ** 2).sum(0), 1.0, atol=1e-5)
    assert np.abs(np.angle(sens[0, 1:] * np.conj(sens[0, :-1]))).max() < 0.5  # smooth phase
    x3 = phantom((40, 48, 24))
    np.testing.assert_allclose(kspace.rss(kspace.simulate_multicoil(x3, 8, sensitivities=sens)), x3, atol=1e-5)
    mc, pm = apply_artifact("undersample", x, seed=0, acceleration=4, n_coils=8)
    assert mc.shape == x.shape and pm["n_coils"] == 8


def test_ghosting_and_spike_in_kspace():
    x = phantom((64, 48))
    out, p = kspace.ghosting(x, 0.6, num_ghosts=4, axis=0, restore=0.0, output="real")
    ratio = np.abs(kspace.fft2c(out.astype(np.float64))) / np.maximum(np.abs(kspace.fft2c(x.astype(np.float64))), 1e-3)
    big = np.abs(kspace.fft2c(x.astype(np.float64))) > 1e-2
    assert np.allclose(ratio[::4][big[::4]], 0.4, atol=1e-3) and np.allclose(ratio[1::4][big[1::4]], 1.0, atol=1e-3)
    out, p = kspace.spike(x, 0.5, seed=1, output="real")
    diff = kspace.fft2c(out.astype(np.float64) - x)
    (pos,) = p["positions"]
    mirror = tuple((np.array(x.shape) - pos) % np.array(x.shape))  # real part: spike/2 at +k and -k
    top2 = {np.unravel_index(i, x.shape) for i in np.argsort(np.abs(diff).ravel())[-2:]}
    assert top2 == {tuple(pos), mirror}
    assert abs(diff[tuple(pos)]) == pytest.approx(0.5 * 0.5 * p["kspace_max"], rel=1e-4)


# ------------------------------------------------------------------------------------------
# inpainting masks
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(320, 320), (256, 256), (640, 368)])
def test_inpainting_mask_coverage(shape):
    for seed in range(3):
        m, corners = masks.inpainting_mask(shape, 16, 0.25, seed)
        count = math.floor(shape[0] * shape[1] * 0.25 / 256)
        assert len(corners) == count
        assert abs(m.mean() - 0.25) <= 0.03
        assert m.sum() == 256 * len(corners)  # no overlap
        c = corners + 8
        dist = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))[np.triu_indices(len(c), 1)]
        assert dist.min() >= 16 * math.sqrt(2) - 1  # corners are rounded to pixels
    out, p = apply_artifact("patch_dropout", np.ones(shape, np.float32) + 1, seed=0)
    assert abs(p["severity"] - 0.25) <= 0.03 and np.isclose((out == 0).mean(), p["severity"])


# ------------------------------------------------------------------------------------------
# geometry and intensity
# ------------------------------------------------------------------------------------------
def test_wrap_around_equals_kspace_subsampling():
    rng = np.random.default_rng(0)
    x = rng.random((40, 64)).astype(np.float32) + 1
    out, p = geometry.wrap_around(x, 0.5, axis=1)
    fov, start = p["fov_voxels"], p["fov_start"]
    assert fov == 32 and start == 16
    ref = np.real(np.fft.ifft(np.fft.fft(x.astype(np.float64), axis=1)[:, ::2], axis=1))  # FOV / 2
    np.testing.assert_allclose(out[:, start : start + fov], np.roll(ref, -start, axis=1), atol=1e-5)
    assert np.all(out[:, :start] == x.min())


def test_pixel_shift_and_resample_translation():
    x = phantom((40, 48))
    out, _ = geometry.pixel_shift(x, 3.0, axis=1)
    np.testing.assert_allclose(out, np.roll(x, 3, axis=1), atol=1e-5)
    x3 = phantom((30, 34, 28))
    pose = np.eye(4)
    pose[:3, 3] = [0.0, 4.0, 0.0]  # mm, spacing 2 -> 2 voxels
    res = geometry.resample_pose(x3, pose, spacing=2.0)
    np.testing.assert_allclose(res[:, :-2], x3[:, 2:], atol=1e-6)


def test_registration_error_rms_exact():
    x = phantom((32, 36, 30))
    for s in (1.0, 4.0, 10.0):
        out, p = geometry.registration_error(x, s, seed=int(s), spacing=2.0)
        a = np.array(p["pose"])
        assert p["rms_mm"] == pytest.approx(s, rel=1e-9)
        assert _mc_rms(a, 80.0, np.zeros(3), n=200_000) == pytest.approx(s, rel=1e-2)
        assert np.allclose(a[:3, :3] @ a[:3, :3].T, np.eye(3))


def test_bias_field_and_remove_side():
    x = phantom((40, 40, 40))
    out, p = apply_artifact("bias_field", x, severity=0.5, seed=1)
    fg = x > 0
    ratio = out[fg] / x[fg]
    assert ratio.min() >= p["field_min"] - 1e-5 and ratio.max() <= p["field_max"] + 1e-5
    assert np.std(np.log(ratio)) > 0.05
    out, p = geometry.remove_side(x, 0.5, side="high", axis=0)
    a, b = p["head_extent"]
    assert np.all(out[p["cut_index"] :] == 0) and np.array_equal(out[: p["cut_index"]], x[: p["cut_index"]])
    assert p["cut_index"] == round(b - 0.5 * (b - a))


def test_bias_polynomial_matches_direct_evaluation():
    from mriqa_lib.artifacts import intensity

    for shape in [(20, 24, 18), (30, 26)]:
        mons = intensity._monomials(len(shape), 3)
        c = np.random.default_rng(0).uniform(-1, 1, len(mons))
        g = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
        ref = sum(ci * np.prod([gi**p for gi, p in zip(g, m)], axis=0) for ci, m in zip(c, mons))
        np.testing.assert_allclose(intensity.polynomial_field(shape, c, 3), ref, atol=1e-12)
        assert all(sum(m) <= 3 for m in mons) and len(mons) == (20 if len(shape) == 3 else 10)
