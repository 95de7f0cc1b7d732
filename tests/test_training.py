"""build_trainer: where checkpoints and logs go, and that a fresh run raises no stale-folder warning."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")

from mriqa_lib.config import TrainerParams  # noqa: E402
from mriqa_lib.training import build_trainer  # noqa: E402


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def training_step(self, batch, _idx):
        loss = self.lin(batch[0]).pow(2).mean()
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fresh_run_keeps_checkpoints_apart_from_logs(tmp_path):
    data = torch.utils.data.TensorDataset(torch.from_numpy(np.ones((8, 2), np.float32)))
    ckpt = tmp_path / "ckpt"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = build_trainer(TrainerParams(threads=1), ckpt, max_epochs=1, enable_progress_bar=False)
        trainer.fit(_Tiny(), torch.utils.data.DataLoader(data, batch_size=4))
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    assert trainer.checkpoint_callback.best_model_path == str(ckpt / "checkpoints" / "best.ckpt")
    assert (ckpt / "checkpoints" / "best.ckpt").is_file()
    assert (ckpt / "logs" / "metrics.csv").is_file()
