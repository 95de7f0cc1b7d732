"""Paper 3 on ADNI: no subject of a test-retest pair (experiment 2) trains or validates.

A tiny LONI download (``ADNI/<PTID>/MPRAGE/<date>/I<image>/ADNI_<PTID>_MR_..._S<series>_I<image>.nii.gz``),
ADNI's MRIQUALITY.csv (RID, LONIUID = S<series>, PASS) and a pairs table, in which every pair
subject also has a scan the QC passed, i.e. a candidate training scan. Two of the three pairs name
their subject by RID (``101``) where the files say PTID (``002_S_0101``), one names its scans by
series id: the pair's clean scan must still be recognised as that subject's. The synthesize stage
runs on it (the phantoms used as they are, not through the preparation chain) and its manifests
are checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from stage_runs import settings_with

from mriqa_lib.io import load_nifti, read_tsv, save_nifti
from mriqa_lib.methods.shaw.params import ShawParams


def _phantom(shape=(28, 30, 26), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    c = np.array(shape) / 2 + rng.uniform(-1, 1, 3)
    img = 100.0 * (((x - c[0]) / 9) ** 2 + ((y - c[1]) / 11) ** 2 + ((z - c[2]) / 8) ** 2 < 1)
    img += 60.0 * (((x - c[0] - 4) ** 2 + (y - c[1] + 3) ** 2 + (z - c[2] - 2) ** 2) < 9)
    return ndimage.gaussian_filter(img, 0.8).astype(np.float32)


SUBJECTS = [f"002_S_{100 + k:04d}" for k in range(1, 9)]
# (pairs-table subject id, PTID of the images): one PTID, two RIDs
PAIRS = [("002_S_0103", "002_S_0103"), ("101", "002_S_0101"), ("106", "002_S_0106")]


@pytest.fixture()
def adni(tmp_path):
    root = tmp_path / "ADNI"
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-28, -30, -26]
    qc, pairs, iid = ["RID,VISCODE2,LONIUID,PASS"], ["subject_id\tclean_image_id\tartefact_image_id"], 1000
    paired = dict((ptid, sid) for sid, ptid in PAIRS)
    images = set()
    for k, ptid in enumerate(SUBJECTS):
        base = _phantom(seed=k)
        scans = [(base, "1")] + ([(ndimage.shift(base, (1.0, -0.5, 0.5), order=1), "0")] if ptid in paired else [])
        ids = []
        for data, flag in scans:
            iid += 1
            d = root / ptid / "MPRAGE" / "2010-01-01_10_00_00.0" / f"I{iid}"
            save_nifti(
                d / f"ADNI_{ptid}_MR_MPRAGE_br_raw_20100101100000000_1_S{iid + 5000}_I{iid}.nii.gz", data, affine
            )
            qc.append(f"{int(ptid[-4:])},bl,S{iid + 5000},{flag}")
            ids.append(iid)
        if ptid in paired:  # the RID-named pairs give series ids, the other image ids
            pre, off = ("S", 5000) if paired[ptid] != ptid else ("I", 0)
            pairs.append(f"{paired[ptid]}\t{pre}{ids[0] + off}\t{pre}{ids[1] + off}")
            images |= {f"I{i}" for i in ids}
    (tmp_path / "MRIQUALITY.csv").write_text("\n".join(qc) + "\n")
    (tmp_path / "pairs.tsv").write_text("\n".join(pairs) + "\n")
    return root, tmp_path / "MRIQUALITY.csv", tmp_path / "pairs.tsv", images


def test_pair_subjects_are_read_off_the_pair_images(adni):
    from mriqa_lib.data.adni import pair_subjects

    root, _, pairs, _ = adni
    assert pair_subjects(root, pairs) == {ptid for _, ptid in PAIRS}


def test_adni_pair_subjects_never_train_or_validate(adni, tmp_path, monkeypatch):
    from mriqa_lib.data import adni as adni_module
    from mriqa_lib.data import splits
    from mriqa_lib.stages import shaw

    root, qc, pairs, pair_images = adni
    monkeypatch.setattr(  # the phantoms are no heads: used as they are, not through deepbet
        adni_module, "prepare_file", lambda path, cache, params=None: (load_nifti(path), {"prep_image": str(path)})
    )
    p = ShawParams(
        adni_root=str(root),
        adni_qc_table=str(qc),
        adni_pairs_table=str(pairs),
        grid_mm=8.0,
        corruptions_per_volume=1,
        multitask_extra_per_volume=0,
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    shaw.synthesize(settings_with("shaw", p))
    out = work / "data" / "synthetic" / "shaw"

    manifest = splits.read_manifest(out)
    pair_subjects = {ptid for _, ptid in PAIRS}
    assert pair_subjects <= set(manifest)
    leaked = {s: manifest[s] for s in pair_subjects if manifest[s] != "test"}
    assert not leaked, f"pair subjects in training/validation: {leaked}"
    # the scans behind the training and validation sets: none is a pair image or a pair subject's
    scans = read_tsv(out / "scans.tsv")
    used = scans[scans["split"].isin(["train", "val"])]
    assert len(used) >= 4 and set(used["split"]) == {"train", "val"}  # the split still trains and validates
    assert not set(used["image_id"].astype(str)) & pair_images
    assert not set(used["subject_id"].astype(str)) & pair_subjects
    assert len(read_tsv(out / "pairs.tsv")) == len(PAIRS)
