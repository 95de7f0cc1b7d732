"""Paper 2 (Zuo): held-out examples C (bias field) and H (misalignment) survive N4 and registration.

With the paper profile's preparation (``n4``, ``registration``), C and H stand for a failed bias
correction and a failed registration: applied before those steps they were removed (N4 left ~30 %
of C's log-field, registration ~0.4 mm of H's ~10 mm shift). On a tiny volume (the template at
4 mm, so registration converges) the prepared C must differ from the prepared clean example A by
the injected multiplicative field, and the prepared H be displaced as the injected pose moves it.
With both steps off (the embedded default) the examples are built as before.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mriqa_lib.io import load_nifti, save_nifti
from mriqa_lib.methods.zuo.data import apply_named, prepared_example
from mriqa_lib.methods.zuo.params import ZuoParams
from mriqa_lib.methods.zuo.prep import prepare_volume


@pytest.fixture(scope="module")
def t1w(tmp_path_factory):
    from mriqa_lib.data.multicohort import template_volume

    tpl = template_volume(4.0)  # 48 x 56 x 48 brain
    path = tmp_path_factory.mktemp("zuo_examples") / "sub-001_T1w.nii.gz"
    save_nifti(path, tpl.data, tpl.affine)
    return path


def log_field(shape, coefficients, order) -> np.ndarray:
    """TorchIO's polynomial log-field, term by term: coordinates in [-1, 1] per axis, monomials
    x^i y^j z^k with i + j + k <= order (i outer, then j, then k; the order the artifact records)."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    terms = [(i, j, k) for i in range(order + 1) for j in range(order + 1 - i) for k in range(order + 1 - i - j)]
    return sum(c * x**i * y**j * z**k for c, (i, j, k) in zip(coefficients, terms))


def centre_of_mass_mm(data: np.ndarray, spacing: float) -> np.ndarray:
    """Centre of mass in mm along the array axes, origin at the grid centre (the artifact's frame)."""
    return (np.array(ndimage.center_of_mass(data)) - (np.array(data.shape) - 1) / 2) * spacing


@pytest.fixture(scope="module")
def prepared(t1w):
    p = ZuoParams(n4=True, registration=True, template_spacing=4.0)
    return p, {letter: prepared_example(letter, t1w, p) for letter in "ACH"}


def test_example_c_keeps_its_bias_field_through_n4(prepared):
    p, ex = prepared
    (a, _), (c, info) = ex["A"], ex["C"]
    assert c.shape == a.shape == (48, 56, 48)
    brain = (a > 0.2) & (c > 0)
    ratio = np.log(c[brain] / a[brain])  # the intensity scaling adds a constant to it
    injected = log_field(a.shape, info["coefficients"], info["order"])[brain]
    assert info["severity"] == p.example_severity["bias_field"]
    assert ratio.std() == pytest.approx(injected.std(), rel=0.05)  # before: 0.13 of 0.41
    assert np.corrcoef(ratio, injected)[0, 1] > 0.99


def test_example_h_keeps_its_misalignment_through_registration(prepared):
    p, ex = prepared
    (a, _), (h, info) = ex["A"], ex["H"]
    assert info["severity"] == pytest.approx(p.example_severity["registration_error"])
    # out(q) = in(pose @ q): the clean brain's centre of mass moves to pose^-1 of it
    com_a = centre_of_mass_mm(a, 4.0)
    expected = (np.linalg.inv(np.asarray(info["pose"])) @ np.r_[com_a, 1.0])[:3]
    com_h = centre_of_mass_mm(h, 4.0)
    shift = np.linalg.norm(expected - com_a)
    assert shift > 5.0  # a 15 mm RMS pose moves this brain's centre by ~10 mm
    assert np.linalg.norm(com_h - expected) < 0.1 * shift  # before: displaced 0.4 mm, not 10
    assert np.linalg.norm(com_h - com_a) == pytest.approx(shift, rel=0.1)


def test_embedded_default_applies_them_to_the_acquired_volume_as_before(t1w):
    p = ZuoParams(template_spacing=4.0)  # n4 and registration off
    assert not p.n4 and not p.registration
    for letter, name in (("C", "bias_field"), ("H", "registration_error")):
        seed = p.seed * 1000 + ord(letter)
        before = prepare_volume(apply_named(load_nifti(t1w), name, p.example_severity[name], seed)[0], p)
        got, _ = prepared_example(letter, t1w, p)
        np.testing.assert_array_equal(got, before)
