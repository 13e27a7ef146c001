"""PNG grids of generated images (what WGAN Figs. 5-7 show), from numpy arrays: no torch needed."""

from __future__ import annotations

import math
from typing import BinaryIO

import numpy as np


def is_image_batch(samples: np.ndarray) -> bool:
    """Images (N, C, H, W) with 1 or 3 channels, as opposed to e.g. 2-D toy points (N, 2)."""
    return samples.ndim == 4 and samples.shape[1] in (1, 3)


def image_grid(samples: np.ndarray, ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile images (N, C, H, W) in [-1, 1] into one uint8 image (rows, cols, 3), ``pad`` pixels apart on a
    black background, ``ncols`` per row (default: a square grid). Values outside [-1, 1] are clipped."""
    n, c, h, w = samples.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    pixels = np.clip((samples.astype(np.float32) + 1) * 127.5, 0, 255).round().astype(np.uint8)
    if c == 1:
        pixels = np.repeat(pixels, 3, axis=1)
    grid = np.zeros((pad + nrows * (h + pad), pad + ncols * (w + pad), 3), dtype=np.uint8)
    for i, image in enumerate(pixels.transpose(0, 2, 3, 1)):
        top, left = pad + (i // ncols) * (h + pad), pad + (i % ncols) * (w + pad)
        grid[top : top + h, left : left + w] = image
    return grid


def write_png(f: BinaryIO, grid: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(grid).save(f, format="PNG")
