"""Named, independent random streams derived from a cell's seed.

Each stream (data, noise, penalty, eval, ...) gets its own ``torch.Generator``, so changing how often one
stream is used (say, evaluating more often) never changes another, and a checkpoint can store every
stream's state.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream`` of cell seed ``seed`` (numpy's SeedSequence mixing)."""
    words = np.random.SeedSequence([seed, zlib.crc32(stream.encode())]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 | int(words[1]) >> 1


def generator(seed: int, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream))
