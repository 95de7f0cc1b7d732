"""Paper 4 (SSFD): the distance is streamed batch by batch.

* Same numbers as a direct full-memory computation written here (z-score each image, zero-pad to
  multiples of 16, encode the whole stack at once, mean squared feature difference).
* Peak memory does not grow with the number of slices: the resident-set high-water mark of a fresh
  process (``/proc/self/status`` VmHWM, reset through ``/proc/self/clear_refs``; torch's CPU tensors
  are invisible to tracemalloc) is measured at N and 4N slices; the full-memory computation,
  measured the same way, grows by about the size of its features (the control that shows the
  measurement sees tensors).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from mriqa_lib.methods.ssfd.metric import ssfd, ssfd_layers
from mriqa_lib.models.ssfd_unet import SsfdUNet

torch.set_num_threads(1)  # tiny convolutions: thread start-up dominates on 2 busy cores


def full_memory_ssfd(reference: np.ndarray, image: np.ndarray, layers, encoder) -> dict[int, np.ndarray]:
    """Reference implementation: every image's features of every level held at once."""

    def prep(x: np.ndarray) -> torch.Tensor:
        x = np.asarray(x, np.float64)
        flat = x.reshape(len(x), -1)
        z = (x - flat.mean(1)[:, None, None]) / flat.std(1, ddof=1)[:, None, None]
        pr, pc = (-x.shape[1]) % 16, (-x.shape[2]) % 16
        z = np.pad(z, ((0, 0), (pr // 2, pr - pr // 2), (pc // 2, pc - pc // 2)))
        return torch.from_numpy(z[:, None].astype(np.float32))

    with torch.no_grad():
        _, fa = encoder.encoder(prep(reference))
        _, fb = encoder.encoder(prep(image))
    return {l: ((fa[l - 1] - fb[l - 1]) ** 2).mean(dim=(1, 2, 3)).double().numpy() for l in layers}


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(1)
    return SsfdUNet((4, 8, 8, 8, 8), groups=4).eval()


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_streamed_equals_full_memory(encoder, batch_size):
    rng = np.random.default_rng(batch_size)
    ref = rng.random((7, 30, 41)).astype(np.float32) * 5  # not multiples of 16: padded
    img = ref + rng.normal(0, 0.3, ref.shape).astype(np.float32)
    layers = [1, 2, 3, 4, 5]
    want = full_memory_ssfd(ref, img, layers, encoder)
    got = ssfd_layers(ref, img, layers, encoder, batch_size=batch_size)
    assert sorted(got) == layers
    for l in layers:
        assert got[l].shape == (7,) and np.all(want[l] > 0)
        np.testing.assert_allclose(got[l], want[l], rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(ssfd(ref, img, l, encoder, batch_size=batch_size), want[l], rtol=1e-4, atol=1e-9)
    assert ssfd(ref[2], img[2], 3, encoder) == pytest.approx(want[3][2], rel=1e-4)
    # torch input of another dtype: same numbers
    got_t = ssfd_layers(torch.from_numpy(ref).double(), torch.from_numpy(img), [2], encoder, batch_size=batch_size)
    np.testing.assert_allclose(got_t[2], want[2], rtol=1e-4)


_PROBE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    sys.path.insert(0, sys.argv[3])
    from test_ssfd_streaming import full_memory_ssfd
    from mriqa_lib.methods.ssfd.metric import ssfd_layers
    from mriqa_lib.models.ssfd_unet import SsfdUNet

    def kb(key):
        line = next(l for l in open("/proc/self/status") if l.startswith(key + ":"))
        return int(line.split()[1])

    torch.set_num_threads(1)
    torch.manual_seed(0)
    enc = SsfdUNet((8, 16, 32, 64, 64), groups=4).eval()
    n, mode = int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(0)
    ref = rng.random((n, 96, 96), dtype=np.float32)
    img = (ref + rng.normal(0, 0.1, ref.shape)).astype(np.float32)
    layers = [1, 2, 3, 4]
    run = (lambda a, b: ssfd_layers(a, b, layers, enc, batch_size=8)) if mode == "streamed" else (
        lambda a, b: full_memory_ssfd(a, b, layers, enc))
    run(ref[:2], img[:2])  # warm-up: thread pools, allocator arenas
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the high-water mark
    base = kb("VmRSS")
    d = run(ref, img)
    print(json.dumps({"peak_mb": (kb("VmHWM") - base) / 1024, "n": len(d[4])}))
    """
)


def _peaks(tmp_path: Path, runs: list[tuple[int, str]]) -> dict[tuple[int, str], float]:
    """Peak RSS growth (MB) of each (slices, mode) run, each in its own fresh process (two at a time)."""
    script = tmp_path / "probe.py"
    script.write_text(_PROBE)
    # a fixed mmap threshold: glibc's adaptive one moves freed batches onto the heap, whose
    # fragmentation adds 5-15 MB of noise to the high-water mark (not growth: it varies up and down)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
    here = str(Path(__file__).parent)
    out = {}
    for pair in (runs[:2], runs[2:]):
        procs = {
            r: subprocess.Popen(
                [sys.executable, str(script), str(r[0]), r[1], here], stdout=subprocess.PIPE, text=True, env=env
            )
            for r in pair
        }
        for r, proc in procs.items():
            stdout, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, stdout
            res = json.loads(stdout.strip().splitlines()[-1])
            assert res["n"] == r[0]
            out[r] = res["peak_mb"]
    return out


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset peak RSS")
def test_peak_memory_does_not_grow_with_the_number_of_slices(tmp_path):
    n = 24
    peaks = _peaks(tmp_path, [(n, "streamed"), (4 * n, "streamed"), (n, "full"), (4 * n, "full")])
    print({f"{k[1]} N={k[0]}": round(v, 1) for k, v in peaks.items()})
    # levels 1-4 of the (8, 16, 32, 64) encoder on 96 x 96: 138,240 floats an image, for reference
    # and image: 3N more slices hold >= 3 * 24 * 2 * 0.55 MB = 80 MB more in the full computation
    full_growth = peaks[(4 * n, "full")] - peaks[(n, "full")]
    assert full_growth > 60, peaks  # the measurement sees torch's tensors
    streamed_growth = peaks[(4 * n, "streamed")] - peaks[(n, "streamed")]
    assert streamed_growth < 4, peaks  # a batch of 8 is ~10 MB of features whatever N is
    assert peaks[(4 * n, "streamed")] < 0.25 * peaks[(4 * n, "full")], peaks
