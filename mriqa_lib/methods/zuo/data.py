"""Training, density, rated-test and held-out example sets of paper 2 (embedded or cohort table).

* encoder set: train-split volumes, slices of the three orientations (``band_slices``);
* density set: ``density_splits`` volumes, their centre axial slices (volume-level m);
* rated set: ``rated_splits`` volumes (never seen by the encoder or the flow) -- the unaltered
  volume (rating low) and ``rated_variants``
  copies with a random artifact of ``rated_artifacts`` at severity ``r * severity_max``;
  r is stratified over the bins: r < bins[0] low, r < bins[1] medium, else high
  (medium + high = fail, as in the paper). A cohort table with a ``rating`` column supplies
  real ratings instead (no simulation);
* held-out examples A-H (Fig. 3b) from one rated-set subject.

Artifacts are applied to the acquired volume (its own grid and voxel size), before the
preparation of :mod:`mriqa_lib.methods.zuo.prep`, as they would be in a real scan. Two examples
stand for a failed preparation step instead, and would be removed by it (``UNDONE_BY``): C's bias
field by N4, H's misalignment by registration. When that step is on, :func:`prepared_example`
applies them after it (see there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib import seeds
from mriqa_lib.io import MriqaInputError, Volume, load_nifti, read_json
from mriqa_lib.methods.zuo.params import EXAMPLES, ZuoParams

__all__ = [
    "UNDONE_BY",
    "apply_named",
    "make_example",
    "non_t1w_volume",
    "prepared_example",
    "rated_plan",
    "rating_of",
    "subject_splits",
]

#: held-out examples a preparation step would remove: artifact -> the ``ZuoParams`` switch of that step
UNDONE_BY = {"bias_field": "n4", "registration_error": "registration"}


def subject_splits(table, p: ZuoParams) -> dict[str, str]:
    """Who paper 2 uses where, for ``mriqa_lib.data.splits.write_manifest``: ``train`` for the
    encoder's volumes (the table's ``train`` split) and the flow's (``density_splits``), ``test``
    for the rated set and the examples (``rated_splits``). Volumes of other splits are not used.

    The table's splits are the cohort's (:func:`mriqa_lib.data.multicohort.embedded_table`), so its
    held-out ``test`` subjects can only be rated: ``ZuoParams`` keeps ``test`` out of
    ``density_splits``; this refuses a table that would still train on one.

    Raises:
        MriqaInputError: a subject both trained on and rated, or a ``test`` subject trained on.
    """
    trained = set(p.density_splits) | {"train"}
    out: dict[str, str] = {}
    for pid, split in zip(table["participant_id"].astype(str), table["split"].astype(str)):
        use = "train" if split in trained else "test" if split in p.rated_splits else None
        if use is None:
            continue
        if out.get(pid, use) != use or (use == "train" and split == "test"):
            raise MriqaInputError(f"zuo: subject {pid} would be trained on and tested (split '{split}')")
        out[pid] = use
    return out


def rating_of(r: float, bins: tuple[float, float]) -> str:
    """low / medium / high for a relative severity r in [0, 1]."""
    return "low" if r < bins[0] else "medium" if r < bins[1] else "high"


def rated_plan(n_subjects: int, p: ZuoParams) -> list[dict[str, Any]]:
    """Per test subject: ``rated_clean`` unaltered copies, then ``rated_variants`` artifacts whose
    r is stratified (low, medium, high in turn, uniform inside each bin) and whose type cycles
    through a per-subject shuffled list of ``rated_artifacts``; seeds from (seed, subject, j)."""
    edges = [0.0, p.bins[0], p.bins[1], 1.0]
    plan = []
    for s in range(n_subjects):
        rng = seeds.rng(p.seed, "zuo.subject_looks", s)
        for j in range(p.rated_clean):
            plan.append({"subject": s, "variant": j, "artifact": "none", "r": 0.0, "severity": 0.0, "seed": 0})
        kinds = list(rng.permutation(p.rated_artifacts))
        for j in range(p.rated_variants):
            b = j % 3
            r = float(rng.uniform(edges[b], edges[b + 1]))
            name = str(kinds[j % len(kinds)])
            plan.append(
                {
                    "subject": s,
                    "variant": p.rated_clean + j,
                    "artifact": name,
                    "r": r,
                    "severity": r * p.severity_max[name],
                    "seed": int(rng.integers(2**31)),
                }
            )
    for row in plan:
        row["rating"] = rating_of(row["r"], p.bins)
        row["fail"] = row["rating"] != "low"
    return plan


def apply_named(volume: Volume, name: str, severity: float, seed: int) -> tuple[Volume, dict]:
    """``mriqa_lib.artifacts.apply_artifact`` on the acquired volume (spacing from its affine)."""
    from mriqa_lib.artifacts import apply_artifact

    if name == "none" or severity == 0:
        return volume, {"severity": 0.0}
    if name == "motion":
        # k-space segments along the anterior-posterior axis (array axis 1), a usual phase-encoding
        # direction: the library segments the last axis, so move axis 1 there and back
        data, info = apply_artifact(
            name, np.moveaxis(volume.data, 1, -1), severity=severity, seed=seed, spacing=volume.spacing[[0, 2, 1]]
        )
        info["kspace_segment_axis"] = "anterior-posterior (array axis 1)"
        return Volume(np.ascontiguousarray(np.moveaxis(data, -1, 1)), volume.affine, volume.path), info
    data, info = apply_artifact(name, volume.data, severity=severity, seed=seed, spacing=volume.spacing)
    return Volume(data, volume.affine, volume.path), info


def non_t1w_volume(t1w_path: str | Path, seed: int) -> tuple[Volume, dict]:
    """A T2w-like look of the same subject: tissue maps (probseg beside the T1w, embedded cohort)
    re-synthesised with ``cohort.CONTRAST_TISSUE['T2w']`` and the subject's recorded noise; when no
    tissue maps exist, the library's ``non_t1w_contrast`` on the T1w."""
    from mriqa_lib.data.cohort import CONTRAST_TISSUE, rician, synthesize_contrast

    t1w_path = Path(t1w_path)
    stem = t1w_path.name.replace("_T1w.nii.gz", "")
    maps = {t: t1w_path.parent / f"{stem}_label-{t}_probseg.nii.gz" for t in ("GM", "WM", "CSF")}
    side = t1w_path.parent / f"{stem}_T1w.json"
    if all(m.exists() for m in maps.values()) and side.exists():
        meta = read_json(side)
        vols = {t: load_nifti(m) for t, m in maps.items()}
        wm_int = float(meta["tissue_intensity_wm_gm_csf"][0])
        tissue = tuple(wm_int * r for r in CONTRAST_TISSUE["T2w"])
        img = synthesize_contrast(vols["GM"].data, vols["WM"].data, vols["CSF"].data, tissue)
        img = rician(np.random.default_rng(seed), img, float(meta["noise_sigma"]))
        return Volume(img.astype(np.float32), vols["GM"].affine, t1w_path), {
            "severity": 1.0,
            "source": "tissue maps, T2w",
        }
    return apply_named(load_nifti(t1w_path), "non_t1w_contrast", 1.0, seed)


def _example_seed(p: ZuoParams, letter: str) -> int:
    return p.seed * 1000 + ord(letter)


def make_example(letter: str, t1w_path: str | Path, p: ZuoParams) -> tuple[Volume, dict]:
    """Held-out example ``letter`` (A-H, see ``EXAMPLES``) built from one T1w volume (acquired grid)."""
    name = EXAMPLES[letter]
    seed = _example_seed(p, letter)
    if name == "clean":
        return load_nifti(t1w_path), {"severity": 0.0}
    if name == "non_t1w":
        return non_t1w_volume(t1w_path, seed)
    return apply_named(load_nifti(t1w_path), name, p.example_severity[name], seed)


def prepared_example(letter: str, t1w_path: str | Path, p: ZuoParams) -> tuple[np.ndarray, dict]:
    """Held-out example ``letter`` prepared (:func:`~mriqa_lib.methods.zuo.prep.prepare_volume`).

    An example whose artifact a switched-on preparation step would remove (``UNDONE_BY``: C's bias
    field under ``n4``, H's misalignment under ``registration``) gets it after N4 and registration,
    on the template grid, before the intensity scaling: the example is then a scan whose bias
    correction or registration failed, as in the paper, and keeps the injected field or shift.
    Otherwise (every other example; C and H when those steps are off, the embedded default) the
    artifact is applied to the acquired volume by :func:`make_example`.

    Returns:
        the prepared volume (template grid, float32) and the artifact's realised parameters.
    """
    from .prep import prepare_volume, scale_intensity, to_template

    name, step = EXAMPLES[letter], UNDONE_BY.get(EXAMPLES[letter])
    if step is None or not getattr(p, step):
        vol, info = make_example(letter, t1w_path, p)
        return prepare_volume(vol, p), info
    vol, info = apply_named(
        to_template(load_nifti(t1w_path), p), name, p.example_severity[name], _example_seed(p, letter)
    )
    info["applied"] = f"after the preparation (its {step} step would remove it), on the template grid"
    return scale_intensity(vol, p), info
