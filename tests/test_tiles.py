"""Tiling: the inner windows partition the scene, and a windowed operation run tile by tile (with a halo equal
to its radius) equals the whole-scene result exactly, also through GeoTIFF reads and writes."""
import os

import numpy as np
import pytest
from helpers import make_raster, read
from scipy import ndimage

from stf_fusion.core.errors import CancelledError
from stf_fusion.core.feedback import NullFeedback
from stf_fusion.core.raster import OutputTransaction, RasterWriter, raster_info, read_block
from stf_fusion.core.tiles import plan_tiles, run_tiled, stitch, tile_size_for_budget


@pytest.mark.parametrize("width, height, size, halo", [(100, 70, 32, 3), (64, 64, 64, 5), (17, 90, 8, 0)])
def test_inner_windows_partition_the_scene(width, height, size, halo):
    cover = np.zeros((height, width), int)
    tiles = plan_tiles(width, height, size, halo)
    for tile in tiles:
        cover[tile.inner.slices] += 1
        o, i = tile.outer, tile.inner
        assert o.x == max(0, i.x - halo) and o.y == max(0, i.y - halo)
        assert o.x + o.width == min(width, i.x + i.width + halo)
        assert o.y + o.height == min(height, i.y + i.height + halo)
    assert np.all(cover == 1)
    assert tiles[-1].count == len(tiles)


def test_tile_size_for_budget():
    # 6 bands x 4 bytes x 10 arrays = 240 bytes per pixel; 64 MiB -> side 541, minus 2 x 15 halo
    assert tile_size_for_budget(240, 64 * 2**20, 15, align=0) == int((64 * 2**20 / 240) ** 0.5) - 30
    assert tile_size_for_budget(240, 64 * 2**20, 15) == 256  # 511 rounded down to whole 256-pixel blocks
    assert tile_size_for_budget(24, 64 * 2**20, 15) == 1536
    assert tile_size_for_budget(240, 1000, 15) == 32  # never below the minimum


def _windowed(block: np.ndarray) -> np.ndarray:
    """A nonlinear 7 x 7 operation (radius 3): local mean plus local median, per band."""
    return np.stack([ndimage.uniform_filter(b, 7, mode="nearest") + ndimage.median_filter(b, 7, mode="nearest")
                     for b in block])


@pytest.mark.parametrize("tile_size", [16, 25, 40, 200])
def test_tiled_equals_whole_scene_exactly(tile_size):
    scene = np.random.default_rng(3).random((2, 90, 110)).astype(np.float32)
    whole = _windowed(scene)
    tiles = plan_tiles(110, 90, tile_size, halo=3)
    blocks = []
    run_tiled(lambda t: _windowed(scene[(slice(None),) + t.outer.slices]), tiles,
              lambda t, b: blocks.append(b))
    np.testing.assert_array_equal(stitch(tiles, blocks, 110, 90), whole)


def test_too_small_halo_shows_seams():
    """The equivalence above is not trivially true: with a halo below the radius the tiles differ."""
    scene = np.random.default_rng(3).random((1, 90, 110)).astype(np.float32)
    tiles = plan_tiles(110, 90, 25, halo=2)
    blocks = []
    run_tiled(lambda t: _windowed(scene[(slice(None),) + t.outer.slices]), tiles, lambda t, b: blocks.append(b))
    assert not np.array_equal(stitch(tiles, blocks, 110, 90), _windowed(scene))


class _Recorder(NullFeedback):
    def __init__(self, cancel_after=None):
        self.progress = []
        self.cancel_after = cancel_after

    def set_progress(self, percent):
        self.progress.append(percent)

    def is_canceled(self):
        return self.cancel_after is not None and len(self.progress) >= self.cancel_after


def test_tiled_through_geotiff_equals_whole_scene(tmp_path):
    raw = np.random.default_rng(4).integers(0, 10000, (3, 130, 150))
    src = make_raster(tmp_path / "in.tif", raw)
    info = raster_info(src)
    whole, _ = read_block(src, scale=1e-4)
    expected = _windowed(whole)
    out = tmp_path / "out.tif"
    feedback = _Recorder()
    with OutputTransaction() as tx:
        with RasterWriter(tx.add(str(out)), info, dtype="float32") as writer:
            run_tiled(lambda t: _windowed(read_block(src, t.outer, scale=1e-4, info=info)[0]),
                      plan_tiles(150, 130, 48, halo=3), lambda t, b: writer.write(b, t.inner), feedback)
    np.testing.assert_array_equal(read(out), expected)
    assert feedback.progress == sorted(feedback.progress) and feedback.progress[-1] == 100.0


def test_cancel_stops_between_tiles_and_leaves_no_file(tmp_path):
    src = make_raster(tmp_path / "in.tif", np.ones((1, 100, 100)))
    info = raster_info(src)
    folder = tmp_path / "out"
    done = []
    with pytest.raises(CancelledError):
        with OutputTransaction() as tx:
            with RasterWriter(tx.add(str(folder / "o.tif")), info) as writer:
                run_tiled(lambda t: read_block(src, t.outer, info=info)[0], plan_tiles(100, 100, 25),
                          lambda t, b: (writer.write(b, t.inner), done.append(t)), _Recorder(cancel_after=3))
    assert len(done) == 3
    assert os.listdir(folder) == []
