"""STF3DCNN (seed 000): a 3D fully convolutional network on the 4D arrangement of the series that predicts the
fine image of EVERY date without one in a single pass.

Contract (SPEC.md item 2). The series is arranged [band, time, row, col] (TSB, :mod:`.arrangement`). For a
reference pair date k:

    dC_k(t) = C(t) - C(k)          (coarse residual sequence, every date t)
    dF_k(t) = F(t) - F(k)          (fine residual sequence, known on the pair dates only)

The network maps the dC_k sequence to the dF_k sequence: Conv3d over (time, row, col) with the bands as channels,
LeakyReLU (slope 0.2) after every layer but the last, ``depth`` layers of ``width`` filters, kernel
``kernel_time`` x ``kernel_space`` x ``kernel_space``, optional residual blocks (conv-LeakyReLU-conv plus the
block's input). Our reading of "learning the residual mapping": the network adds its output to dC_k
(dF_k = dC_k + net(dC_k)), so an untrained network starts from STARFM's assumption dF = dC. The loss is the MSE
over the dates with a known fine image other than k (masked), on spatio-temporal sub-cubes: ``patch`` x ``patch``
pixels x every date, one sample per (position, reference pair).

Prediction: P_k(t) = F(k) + net(dC_k)(t) for every date t at once. Time weighting (the paper's ablation):
``off`` uses the nearest pair only; ``distance`` blends the pairs before and after t with weights inversely
proportional to the number of days; ``change`` blends them with weights inversely proportional to the mean
absolute coarse change |C(t) - C(k)| over the scene, per band. Dates before the first or after the last pair use
the nearest pair. The time axis is the sequence of dates (the network does not see the number of days between
them). Space is tiled with a halo of the spatial receptive field; time is never cut.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import describe_device, import_torch, resolve_device
from ..errors import InputError
from ..feedback import Feedback
from ..fusion import write_predictions
from ..raster import read_block
from ..series import SceneSeries
from ..tiles import Window
from .modelfile import training_metadata
from .training import seed_everything, train

METHOD = "stf3dcnn"
TIME_WEIGHTS = ("off", "distance", "change")


@dataclass
class Stf3dcnnParams:
    """Network and training settings (the paper's are not all given; these are documented defaults)."""

    depth: int = 4
    width: int = 32
    kernel_time: int = 3
    kernel_space: int = 3
    residual_blocks: int = 0
    epochs: int = 30
    batch: int = 8
    lr: float = 1e-3
    patch: int = 32
    max_samples: int = 512
    time_weighting: str = "distance"
    validation: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        if self.depth < 2:
            raise InputError(f"The network needs at least 2 layers (got {self.depth}).")
        if self.kernel_time % 2 == 0 or self.kernel_space % 2 == 0:
            raise InputError("Kernel sizes must be odd.")
        if self.time_weighting not in TIME_WEIGHTS:
            raise InputError(f"Unknown time weighting '{self.time_weighting}'; use one of {', '.join(TIME_WEIGHTS)}.")

    @property
    def spatial_radius(self) -> int:
        layers = self.depth + 2 * self.residual_blocks
        return layers * (self.kernel_space // 2)


def build_network(p: Stf3dcnnParams, bands: int) -> Any:
    """The 3D FCN: [N, bands, T, H, W] -> [N, bands, T, H, W]; dF = dC + net(dC)."""
    torch = import_torch()
    nn = torch.nn
    k = (p.kernel_time, p.kernel_space, p.kernel_space)
    pad = (p.kernel_time // 2, p.kernel_space // 2, p.kernel_space // 2)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv3d(p.width, p.width, k, padding=pad)
            self.b = nn.Conv3d(p.width, p.width, k, padding=pad)

        def forward(self, x):
            return torch.nn.functional.leaky_relu(x + self.b(torch.nn.functional.leaky_relu(self.a(x), 0.2)), 0.2)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers = [nn.Conv3d(bands, p.width, k, padding=pad), nn.LeakyReLU(0.2)]
            for _ in range(p.depth - 2):
                layers += [nn.Conv3d(p.width, p.width, k, padding=pad), nn.LeakyReLU(0.2)]
            layers += [Block() for _ in range(p.residual_blocks)]
            layers.append(nn.Conv3d(p.width, bands, k, padding=pad))
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.body(x)

    return Net()


def masked_mse(output: Any, target: Any) -> Any:
    """MSE over the dates flagged in the last channel of ``target`` ([N, B + 1, T, H, W])."""
    mask = target[:, -1:]
    diff = (output - target[:, :-1]) * mask
    return (diff * diff).sum() / (mask.sum() * output.shape[1]).clamp_min(1.0)


def _read_cube(series: SceneSeries, window: Window | None, scale: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Coarse [B, T, h, w] for every date, fine {date: [B, h, w]} for the pairs, validity [h, w]."""
    coarse, valid, fine = [], None, {}
    for c in series.coarse:
        data, ok = read_block(c.path, window, scale=scale, info=c.info)
        coarse.append(data)
        valid = ok if valid is None else valid & ok
    for f in series.fine:
        data, ok = read_block(f.path, window, scale=scale, info=f.info)
        fine[f.date] = data
        valid &= ok
    return np.stack(coarse, axis=1), valid, fine


def train_stf3dcnn(
    series: SceneSeries, scale: float, params: Stf3dcnnParams, device: str = "auto",
    feedback: Feedback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train on sub-cubes of the whole series; returns (state dicts, metadata)."""
    torch = import_torch()
    params.validate()
    if len(series.fine) < 2:
        raise InputError("STF3DCNN learns the fine change between pair dates: it needs at least two pairs.")
    dev = resolve_device(device)
    seed_everything(params.seed)
    grid = series.grid
    size = min(params.patch, grid.height, grid.width)
    rng = np.random.default_rng(params.seed)
    pair_index = [series.dates.index(f.date) for f in series.fine]
    positions = max(1, params.max_samples // len(series.fine))
    inputs, targets = [], []
    for _ in range(positions):
        y = int(rng.integers(0, grid.height - size + 1))
        x = int(rng.integers(0, grid.width - size + 1))
        coarse, valid, fine = _read_cube(series, Window(x, y, size, size), scale)
        if not valid.all():
            continue
        for f, k in zip(series.fine, pair_index):
            d_coarse = coarse - coarse[:, k:k + 1]
            target = np.zeros((grid.bands + 1,) + coarse.shape[1:], np.float32)
            for g, j in zip(series.fine, pair_index):
                if j != k:
                    target[:-1, j] = fine[g.date] - fine[f.date]
                    target[-1, j] = 1.0
            inputs.append(d_coarse)
            targets.append(target)
    if not inputs:
        raise InputError("No training sub-cube without nodata; choose a smaller patch size.")
    x = torch.from_numpy(np.stack(inputs))
    y = torch.from_numpy(np.stack(targets))
    net = build_network(params, grid.bands).to(dev)
    if feedback is not None:
        feedback.info(f"STF3DCNN training on {describe_device(dev)}: {len(x)} sub-cubes of {size} x {size} pixels x "
                      f"{len(series.dates)} dates, pairs on " + ", ".join(d.isoformat() for d in series.pair_dates))
    optimizer = torch.optim.Adam(net.parameters(), lr=params.lr)
    history = train(net, optimizer, x, y, params.epochs, params.batch, masked_mse, params.validation, params.seed,
                    dev, feedback, label="stf3dcnn: ")
    metadata = training_metadata(grid, scale, params, params.spatial_radius, series.pair_dates,
                                 {"stf3dcnn": history.as_dict()}, dev,
                                 training_dates=[d.isoformat() for d in series.dates])
    return {"stf3dcnn": net.state_dict()}, metadata


def blend_weights(date: _dt.date, before: _dt.date, after: _dt.date, mode: str,
                  change_before: np.ndarray | None = None, change_after: np.ndarray | None = None) -> Any:
    """Weight of the prediction from the pair ``before`` (the other gets 1 - w) for ``date`` between them."""
    if mode == "distance":
        return (after - date).days / max((after - before).days, 1)
    inverse_b = 1.0 / np.maximum(change_before, 1e-12)
    inverse_a = 1.0 / np.maximum(change_after, 1e-12)
    return inverse_b / (inverse_b + inverse_a)


def predict(
    meta: dict[str, Any], weights: dict[str, Any], series: SceneSeries, dates: list[_dt.date], folder: str,
    scale: float, device: str = "auto", feedback: Feedback | None = None, time_weighting: str | None = None,
    tile_size: int | None = None,
) -> list[str]:
    """Predict all ``dates`` at once per tile (``stf3dcnn_<date>.tif``); ``tile_size`` overrides the memory
    budget's tile side."""
    torch = import_torch()
    params = Stf3dcnnParams(**meta["params"])
    mode = time_weighting or params.time_weighting
    if mode not in TIME_WEIGHTS:
        raise InputError(f"Unknown time weighting '{mode}'; use one of {', '.join(TIME_WEIGHTS)}.")
    dev = resolve_device(device)
    net = build_network(params, series.grid.bands)
    net.load_state_dict(weights["stf3dcnn"])
    net = net.to(dev).eval()
    all_dates = series.dates
    pairs = series.pair_dates
    # scene-wide mean absolute coarse change between each date and each pair (for the 'change' weighting)
    changes = {}
    if mode == "change":
        means = {c.date: _masked_band_mean(c, scale) for c in series.coarse}
        changes = {(d, k): np.abs(means[d] - means[k]) for d in dates for k in pairs}
    plans = {}
    for date in dates:
        around = series.pairs_around(date) if mode != "off" else None
        if around:
            b, a = around[0].date, around[1].date
            w = blend_weights(date, b, a, mode, changes.get((date, b)), changes.get((date, a)))
            plans[date] = [(b, w), (a, 1.0 - w)]
        else:
            plans[date] = [(series.nearest_pair(date).date, 1.0)]
    needed = sorted({k for plan in plans.values() for k, _ in plan})
    if feedback is not None:
        feedback.info(f"STF3DCNN: {len(dates)} date(s) in one pass per tile from the reference pair(s) "
                      f"{', '.join(k.isoformat() for k in needed)}; time weighting {mode}.")
    cache: dict[str, Any] = {}

    def predict_tile(date, tile):
        if cache.get("tile") != tile.index:
            coarse, valid, fine = _read_cube(series, tile.outer, scale)
            c = torch.from_numpy(coarse).to(dev)
            outputs = {}
            with torch.no_grad():
                for k in needed:
                    i = all_dates.index(k)
                    d_fine = net((c - c[:, i:i + 1])[None])[0]  # [B, T, h, w]
                    outputs[k] = torch.from_numpy(fine[k]).to(dev)[:, None] + d_fine
            cache.update(tile=tile.index, outputs=outputs, valid=valid)
        t = all_dates.index(date)
        out = None
        for k, w in plans[date]:
            part = cache["outputs"][k][:, t]
            w = torch.as_tensor(np.asarray(w, np.float32), device=dev).reshape(-1, 1, 1) if np.ndim(w) else w
            out = part * w if out is None else out + part * w
        r, cc = tile.inner_in_outer
        return out[:, r, cc].cpu().numpy(), cache["valid"][r, cc]

    return write_predictions(series, dates, METHOD, folder, predict_tile, scale, halo=params.spatial_radius,
                             bytes_per_pixel=4 * len(all_dates) * (params.width * 2 + 8) / 6, tile_size=tile_size,
                             feedback=feedback)


def _masked_band_mean(item, scale: float) -> np.ndarray:
    data, valid = read_block(item.path, scale=scale, info=item.info)
    return data[:, valid].mean(axis=1)
