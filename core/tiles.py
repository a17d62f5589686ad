"""Tiling of a scene into windows with a halo, and stitching of the tiles' centres.

A windowed operation with radius ``r`` (a moving window of ``2r+1`` pixels, a CNN's receptive field) computed on
a tile read with a halo of at least ``r`` pixels gives, in the tile's centre (its *inner* window), exactly the
values the same operation gives on the whole scene. At the scene border the halo is clipped, so the tile sees
the same border the whole scene has. Memory is bounded by the tile size, not the scene size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .feedback import Feedback, check_cancel


@dataclass(frozen=True)
class Window:
    """A pixel window: column offset, row offset, width, height."""

    x: int
    y: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Row and column slices of this window in scene coordinates."""
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


@dataclass(frozen=True)
class Tile:
    """One tile: ``inner`` is the part it is responsible for, ``outer`` adds the halo (clipped to the scene)."""

    index: int
    count: int
    inner: Window
    outer: Window

    @property
    def inner_in_outer(self) -> tuple[slice, slice]:
        """Slices that cut the inner window out of an array covering the outer window."""
        dy, dx = self.inner.y - self.outer.y, self.inner.x - self.outer.x
        return slice(dy, dy + self.inner.height), slice(dx, dx + self.inner.width)


def tile_size_for_budget(bytes_per_pixel: float, memory_budget: float, halo: int, minimum: int = 32,
                         align: int = 256) -> int:
    """Largest square inner tile side whose outer window (side + 2 halo) fits ``memory_budget`` bytes.

    ``bytes_per_pixel`` is what the operation holds per pixel of the outer window (all bands, inputs, outputs and
    intermediates). Sides of ``align`` pixels or more are rounded down to a multiple of ``align`` (the output
    GeoTIFF block size), so every tile writes whole blocks once. Never below ``minimum``.
    """
    side = int(math.sqrt(max(memory_budget, 1.0) / max(bytes_per_pixel, 1e-9))) - 2 * halo
    if align and side >= align:
        side -= side % align
    return max(minimum, side)


def plan_tiles(width: int, height: int, tile_size: int, halo: int = 0) -> list[Tile]:
    """Split a ``width`` x ``height`` scene into inner windows of at most ``tile_size`` pixels a side.

    Each tile's outer window extends its inner window by ``halo`` pixels on every side, clipped to the scene.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"empty scene {width} x {height}")
    if tile_size <= 0 or halo < 0:
        raise ValueError(f"tile size must be positive and halo non-negative (got {tile_size}, {halo})")
    xs = range(0, width, tile_size)
    ys = range(0, height, tile_size)
    count = len(xs) * len(ys)
    tiles = []
    for y in ys:
        for x in xs:
            inner = Window(x, y, min(tile_size, width - x), min(tile_size, height - y))
            ox, oy = max(0, x - halo), max(0, y - halo)
            ox1 = min(width, inner.x + inner.width + halo)
            oy1 = min(height, inner.y + inner.height + halo)
            tiles.append(Tile(len(tiles), count, inner, Window(ox, oy, ox1 - ox, oy1 - oy)))
    return tiles


def iter_tiles(tiles: list[Tile], feedback: Feedback | None = None) -> Iterator[Tile]:
    """Yield the tiles, checking cancel before each and reporting progress after each."""
    for tile in tiles:
        check_cancel(feedback)
        yield tile
        if feedback is not None:
            feedback.set_progress(100.0 * (tile.index + 1) / tile.count)
    check_cancel(feedback)


def run_tiled(
    operation: Callable[[Tile], np.ndarray],
    tiles: list[Tile],
    sink: Callable[[Tile, np.ndarray], None],
    feedback: Feedback | None = None,
) -> None:
    """Run ``operation`` on every tile and hand the inner part of its result to ``sink``.

    ``operation(tile)`` returns an array whose last two axes cover ``tile.outer``; only ``tile.inner`` is kept,
    so the halo absorbs the window effects at tile borders.
    """
    for tile in iter_tiles(tiles, feedback):
        result = operation(tile)
        if result.shape[-2:] != (tile.outer.height, tile.outer.width):
            raise ValueError(
                f"tile operation returned shape {result.shape[-2:]}, expected the outer window "
                f"{(tile.outer.height, tile.outer.width)}"
            )
        rows, cols = tile.inner_in_outer
        sink(tile, result[..., rows, cols])


def stitch(tiles: list[Tile], blocks: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """Assemble the inner blocks of ``tiles`` (each covering its tile's inner window) into one array."""
    if not blocks:
        raise ValueError("nothing to stitch")
    leading = blocks[0].shape[:-2]
    out = np.empty(leading + (height, width), dtype=blocks[0].dtype)
    for tile, block in zip(tiles, blocks):
        rows, cols = tile.inner.slices
        out[..., rows, cols] = block
    return out
