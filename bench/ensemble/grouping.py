"""Which cells share a stack: configs equal but for a loss of one structure (see ``bench.ensemble``)."""

from __future__ import annotations

import json

from bench.losses import LOSSES, GANLoss


def _all_but_loss(config: dict) -> dict:
    return {key: value for key, value in config.items() if key != "loss"}


def stack_key(config: dict) -> str:
    """Cells whose configs have one key can train as one ensemble (``bench.train.train_ensemble``): every
    setting equal but the loss, and losses of one ``GANLoss.structure`` (minimax and -log D: one loop, other
    losses)."""
    structure = LOSSES.build(config["loss"], "name").structure
    return json.dumps([_all_but_loss(config), structure], sort_keys=True, default=str)


def member_losses(configs: list[dict]) -> list[GANLoss]:
    """Each member's loss, one object per distinct loss block (so ``stack_losses`` calls each once)."""
    if any(_all_but_loss(c) != _all_but_loss(configs[0]) for c in configs):
        raise ValueError("train_ensemble: members' configs may differ in their loss only")
    built: dict[str, GANLoss] = {}
    for c in configs:
        if repr(c["loss"]) not in built:
            built[repr(c["loss"])] = LOSSES.build(c["loss"], "name")
    return [built[repr(c["loss"])] for c in configs]
