"""The ICBM152 2009a template that ships inside the nilearn wheel, and the reference grid.

nilearn ships the skull-stripped T1 and the GM and WM probability maps at 1 mm
(197 x 233 x 189, uint8). The brain mask follows nilearn's own rule (T1 > 0.2 after scaling to
[0, 1]); CSF = clip(mask - GM - WM, 0, 1). Nothing is downloaded.

``REF_AFFINE`` / ``REF_SHAPE`` define the 2 mm reference grid (96 x 112 x 96, RAS, centred on
the template's brain) that every method of the embedded default works on; ``conform`` in
:mod:`mriqa_lib.data.preprocess` brings any volume onto it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REF_SPACING = 2.0
REF_SHAPE = (96, 112, 96)
# World (MNI mm) centre of the template's field of view; the grid is centred on it.
_CENTRE = np.array([0.0, -18.0, 22.0])
REF_AFFINE = np.diag([REF_SPACING, REF_SPACING, REF_SPACING, 1.0])
REF_AFFINE[:3, 3] = _CENTRE - (np.array(REF_SHAPE) - 1) / 2 * REF_SPACING


@dataclass(frozen=True)
class Template:
    """Template maps on the template's own 1 mm grid, float32 in [0, 1]."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    mask: np.ndarray
    affine: np.ndarray


def template_dir() -> Path:
    import nilearn.datasets

    return Path(nilearn.datasets.__file__).parent / "data"


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """Load the ICBM152 2009a T1, GM and WM maps from the installed nilearn package."""
    import nibabel as nib

    from mriqa_lib.io import MriqaInputError

    maps = {}
    affine = None
    for name in ("t1", "gm", "wm"):
        path = template_dir() / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
        if not path.exists():
            raise MriqaInputError(f"{path}: ICBM152 template not found; is nilearn installed?")
        img = nib.load(str(path))
        maps[name] = np.asarray(img.dataobj, dtype=np.float32) / 255.0
        affine = img.affine
    mask = (maps["t1"] > 0.2).astype(np.float32)
    gm = maps["gm"] * mask
    wm = maps["wm"] * mask
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    return Template(t1=maps["t1"], gm=gm, wm=wm, csf=csf, mask=mask, affine=np.asarray(affine, dtype=np.float64))
