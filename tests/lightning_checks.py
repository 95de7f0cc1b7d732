"""One check for every LightningModule: trained weights survive ``load_from_checkpoint`` alone."""

from __future__ import annotations

from pathlib import Path

import torch


def cpu_trainer(folder: Path, max_steps: int = -1):
    """A quiet one-epoch CPU trainer (at most ``max_steps`` steps) that checkpoints into ``folder``."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=folder, save_top_k=1, monitor=None)
    trainer = L.Trainer(
        max_epochs=1,
        max_steps=max_steps,
        accelerator="cpu",
        callbacks=[ckpt],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return trainer, ckpt


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def fit_and_reload(module, folder: Path, train, val=None, max_steps: int = -1):
    """Fit ``module`` (its weights must move), reload its checkpoint with ``type(module).load_from_checkpoint``
    and check the reloaded weights are the trained ones; both come back in eval mode."""
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer, ckpt = cpu_trainer(folder, max_steps)
    trainer.fit(module, train, val)
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items()), "training moved no weight"
    loaded = type(module).load_from_checkpoint(ckpt.best_model_path, map_location="cpu")
    assert_same_weights(loaded, module)
    return module.eval(), loaded.eval()
