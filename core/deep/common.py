"""Helpers of the deep methods: resolution changes, patch extraction, reading a series as tensors."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..arrays import namespace_of
from ..device import import_torch
from ..errors import InputError
from ..series import DatedRaster, read_item


def read_image(item: DatedRaster, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Whole image as reflectance [B, H, W] and validity [H, W]."""
    return read_item(item, None, scale)


def read_window(item: DatedRaster, tile: Any, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The tile's outer window of an image as reflectance [B, h, w] and validity [h, w]."""
    return read_item(item, tile.outer, scale)


def read_pair_window(series: Any, pair: DatedRaster, tile: Any, scale: float, device: Any) -> tuple[Any, Any, Any]:
    """A pair's fine and coarse images over the tile's outer window as tensors on ``device`` [B, h, w], and where
    both are valid [h, w] (NumPy)."""
    torch = import_torch()
    fine, v1 = read_window(pair, tile, scale)
    coarse, v2 = read_window(series.coarse_at(pair.date), tile, scale)
    return torch.from_numpy(fine).to(device), torch.from_numpy(coarse).to(device), v1 & v2


def lsr_shape(height: int, width: int, factor: int) -> tuple[int, int]:
    """Size of the low-spatial-resolution grid: ceil(size / factor)."""
    return math.ceil(height / factor), math.ceil(width / factor)


def downsample(image: Any, factor: int) -> Any:
    """Bicubic (antialiased) downsampling of [N, C, H, W] by ``factor``; the image is first padded by edge
    replication to a multiple of ``factor`` so the low-resolution grid is exactly ceil(H / factor) pixels."""
    torch = import_torch()
    h, w = image.shape[-2:]
    hl, wl = lsr_shape(h, w, factor)
    padded = torch.nn.functional.pad(image, (0, wl * factor - w, 0, hl * factor - h), mode="replicate")
    return torch.nn.functional.interpolate(padded, size=(hl, wl), mode="bicubic", antialias=True,
                                           align_corners=False)


def upsample(image: Any, factor: int, height: int, width: int) -> Any:
    """Bicubic upsampling of [N, C, h, w] by ``factor``, cropped to ``height`` x ``width``."""
    torch = import_torch()
    up = torch.nn.functional.interpolate(image, scale_factor=factor, mode="bicubic", align_corners=False)
    return up[..., :height, :width]


def upsample_window(image: Any, factor: int, window: Any) -> Any:
    """The part of ``upsample(image, factor, ...)`` covering the fine-grid ``window`` (x, y, width, height),
    computed from a crop of the low-resolution image with a margin of two pixels, so it equals the whole-scene
    upsampling (bicubic reads two source pixels on each side; at the scene edge the crop edge is the image edge)
    up to float32 rounding of the coordinates (~1e-7)."""
    torch = namespace_of(image)  # torch, or the NumPy stand-in for Fit-FC without torch (core/arrays.py)
    hl, wl = image.shape[-2:]
    y0, x0 = max(0, window.y // factor - 2), max(0, window.x // factor - 2)
    y1 = min(hl, (window.y + window.height - 1) // factor + 3)
    x1 = min(wl, (window.x + window.width - 1) // factor + 3)
    up = torch.nn.functional.interpolate(image[..., y0:y1, x0:x1], scale_factor=factor, mode="bicubic",
                                         align_corners=False)
    dy, dx = window.y - y0 * factor, window.x - x0 * factor
    return up[..., dy:dy + window.height, dx:dx + window.width]


def valid_lsr(valid: np.ndarray, factor: int) -> np.ndarray:
    """A low-resolution pixel is valid when every fine pixel under it is valid (edge blocks: those present)."""
    h, w = valid.shape
    hl, wl = lsr_shape(h, w, factor)
    padded = np.ones((hl * factor, wl * factor), bool)
    padded[:h, :w] = valid
    return padded.reshape(hl, factor, wl, factor).all(axis=(1, 3))


def patch_positions(ok: np.ndarray, size: int, stride: int, excluded: np.ndarray | None = None
                    ) -> list[tuple[int, int]]:
    """Top-left corners (row, column) of the ``size`` x ``size`` windows at ``stride`` that are entirely valid
    (``ok``) and do not touch ``excluded``; the last row and column of windows are aligned on the image edge."""
    h, w = ok.shape
    if size > h or size > w:
        raise InputError(f"Training patches of {size} pixels do not fit an image of {w} x {h} pixels; choose a "
                         "smaller patch size.")
    ys = list(range(0, h - size + 1, stride))
    xs = list(range(0, w - size + 1, stride))
    if ys[-1] != h - size:
        ys.append(h - size)
    if xs[-1] != w - size:
        xs.append(w - size)
    bad = ~ok if excluded is None else (~ok | excluded)
    integral = np.pad(bad.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # bad pixels in any window
    return [(y, x) for y in ys for x in xs
            if integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x] == 0]


def box_sum(image: Any, window: int) -> Any:
    """Sum over a centred ``window`` x ``window`` neighbourhood of [N, C, H, W] (zero outside the image)."""
    torch = import_torch()
    r = window // 2
    padded = torch.nn.functional.pad(image, (r, r, r, r))
    return torch.nn.functional.avg_pool2d(padded, window, stride=1) * (window * window)


class TileCache:
    """What the dates of one tile share (issue 28): ``write_predictions`` serves every date of a tile in turn, so a
    value that depends only on the tile and a pair (a pair's images as read, its SR image, a network's pair part) is
    computed for the first date and reused by the others. ``for_tile(key)`` returns the dict of values kept for
    ``key`` (usually the tile's index; DCSTFN's (tile, pair), to keep one pair's large feature maps at a time) and
    drops everything kept for an earlier key, so at most one key's values are held."""

    def __init__(self) -> None:
        self._key: Any = None
        self._values: dict = {}

    def for_tile(self, key: Any) -> dict:
        if key != self._key:
            self._key, self._values = key, {}
        return self._values
