"""Checkpoints of a cell in training (``train.checkpoint_every``): everything the rest of its run depends
on (weights, optimizer states, the data set's and the random streams' states, the clock, the record so far),
as tensors and plain values that ``torch.load(weights_only=True)`` reads back. A resumed run ends exactly as
the uninterrupted one (``tests/test_train_checkpoint.py``). Checkpoints are of single cells, not stacks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from bench.train import Member, Run


def save(path: Path, run: Run) -> None:
    """Write ``run``'s one cell to ``path``: to a temp file, fsynced and renamed, so a kill leaves the previous
    checkpoint intact."""
    (member,) = run.members
    run.generator.sync_members()
    run.critic.sync_members()
    record = member.record
    state = {
        "generator": run.generator.members[0].state_dict(), "critic": run.critic.members[0].state_dict(),
        "generator_opt": run.generator_opt.state_dict(), "critic_opt": run.critic_opt.state_dict(),
        "dataset": member.dataset.state_dict(), "noise_rng": member.noise_rng.get_state(),
        "penalty_rng": member.penalty_rng.get_state(), "step": run.step, "train_s": run.train_s,
        "curves": record.curves, "final": record.final, "labels": record.labels,
        "snapshots": {k: torch.as_tensor(v) for k, v in record.snapshots.items()},
        "artifacts": {k: torch.as_tensor(v) for k, v in record.artifacts.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path | None, device: torch.device) -> dict | None:
    """The checkpoint at ``path``, or None when there is none."""
    if path is None or not path.exists():
        return None
    return torch.load(path, map_location=device, weights_only=True)


def restore_member(checkpoint: dict, member: Member, generator: torch.nn.Module, critic: torch.nn.Module) -> None:
    """A cell's networks (before they are stacked), data set, random streams and record as checkpointed."""
    generator.load_state_dict(checkpoint["generator"])
    critic.load_state_dict(checkpoint["critic"])
    member.dataset.load_state_dict(checkpoint["dataset"])
    member.noise_rng.set_state(checkpoint["noise_rng"].cpu())
    member.penalty_rng.set_state(checkpoint["penalty_rng"].cpu())
    record = member.record
    record.curves, record.final = [tuple(c) for c in checkpoint["curves"]], checkpoint["final"]
    record.labels = checkpoint["labels"]
    record.snapshots = {k: v.cpu().numpy() for k, v in checkpoint["snapshots"].items()}
    record.artifacts = {k: v.cpu().numpy() for k, v in checkpoint["artifacts"].items()}
