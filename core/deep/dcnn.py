"""Patch DCNN regression (seed 002: "spatiotemporal fusion using a deep convolutional neural network", regression
of 3 x 3 patches), written as the equivalent fully convolutional network.

Per band, the inputs are the coarse image of the prediction date (bicubic on the fine grid, as stf:resample_coarse
makes it), the coarse image of a reference pair date and the fine image of that date; the target is the fine image
of the prediction date at the patch centre. A regression on a flattened 3 x 3 x 3 patch followed by hidden layers
is exactly a 3 x 3 convolution followed by 1 x 1 convolutions, so training samples 3 x 3 patches and prediction
runs on whole tiles without building patch arrays:

    fine(t_pred) = fine(t_ref) + [conv 3x3 (3 -> 64), ReLU, conv 1x1 (64 -> 32), ReLU, conv 1x1 (32 -> 1)]

The paper gives no layer widths; 64 and 32 follow the other networks of this plugin. Deviation: the network
learns the residual fine(t_pred) - fine(t_ref) (a skip connection from the fine reference channel, as STFDCNN's
residual learning). It is the same function class (the layers see fine(t_ref)), but a direct regression starts
far from the answer and, measured on the sample series, was still worse than the naive prediction after 3
epochs. One network is shared by all bands (each band is a sample); scene borders are replicated by one pixel.
Training defaults are the paper's Table 1: MSE, 50 epochs, SGD with momentum 0.9, learning rate 0.01, weight
decay 1e-4, batch 64, bicubic interpolation.
Training samples come from every ordered pair of pair dates (reference -> target), at most ``max_patches`` of
them, drawn once with the seed.

Prediction from the nearest pair; with ``two_references`` the predictions from the pairs before and after the date
are blended with weights from the coarse change in 9 x 9 windows (STFDCNN's eq. 8 on the coarse images).
"""
from __future__ import annotations

import datetime as _dt
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import describe_device, import_torch, resolve_device
from ..errors import InputError
from ..feedback import Feedback
from ..fusion import write_predictions
from ..series import SceneSeries
from .common import read_image, read_window
from .modelfile import training_metadata
from .training import seed_everything, train

METHOD = "dcnn"


@dataclass
class DcnnParams:
    """Training settings (defaults: the paper's Table 1)."""

    epochs: int = 50
    batch: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    hidden1: int = 64
    hidden2: int = 32
    max_patches: int = 200_000
    two_references: bool = False
    window: int = 9
    validation: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        if self.epochs < 1 or self.batch < 1 or self.max_patches < 1:
            raise InputError("Epochs, batch size and the number of patches must be at least 1.")


def build_network(p: DcnnParams) -> Any:
    """The fully convolutional form of the 3 x 3 patch regression (valid convolution: a 3 x 3 input gives 1 x 1),
    input channels (coarse t_pred, coarse t_ref, fine t_ref), plus the fine reference at the centre."""
    torch = import_torch()
    nn = torch.nn

    class PatchRegression(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(nn.Conv2d(3, p.hidden1, 3), nn.ReLU(), nn.Conv2d(p.hidden1, p.hidden2, 1),
                                        nn.ReLU(), nn.Conv2d(p.hidden2, 1, 1))

        def forward(self, x):
            return x[:, 2:3, 1:-1, 1:-1] + self.layers(x)

    return PatchRegression()


def stack_inputs(coarse_pred: Any, coarse_ref: Any, fine_ref: Any) -> Any:
    """[B, 3, H, W] network input: each band is a sample with three channels, borders replicated by one pixel."""
    torch = import_torch()
    x = torch.stack([coarse_pred, coarse_ref, fine_ref], dim=1)
    return torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")


def train_dcnn(
    series: SceneSeries, pair_dates: list[_dt.date] | None, scale: float, params: DcnnParams, device: str = "auto",
    feedback: Feedback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the patch regression; returns (state dicts, metadata)."""
    torch = import_torch()
    params.validate()
    dev = resolve_device(device)
    seed_everything(params.seed)
    pairs = [series.fine_at(d) for d in pair_dates] if pair_dates else list(series.fine)
    if len(pairs) < 2:
        raise InputError("The DCNN learns from one pair date to another: it needs at least two pairs.")
    images = {}
    for p in pairs:
        fine, v1 = read_image(p, scale)
        coarse, v2 = read_image(series.coarse_at(p.date), scale)
        images[p.date] = (torch.from_numpy(fine), torch.from_numpy(coarse), v1 & v2)
    rng = np.random.default_rng(params.seed)
    combos = list(itertools.permutations([p.date for p in pairs], 2))
    per_combo = int(np.ceil(params.max_patches / len(combos)))
    xs, ys = [], []
    for ref, target in combos:
        f_ref, c_ref, v_ref = images[ref]
        f_tgt, c_tgt, v_tgt = images[target]
        x = stack_inputs(c_tgt, c_ref, f_ref)  # [B, 3, H+2, W+2]
        valid = np.argwhere(v_ref & v_tgt)
        bands = x.shape[0]
        count = min(per_combo, len(valid) * bands)
        pick = rng.choice(len(valid) * bands, count, replace=False)
        band, pix = pick % bands, valid[pick // bands]
        rows = torch.from_numpy(pix[:, 0])[:, None, None] + torch.arange(3)[None, :, None]
        cols = torch.from_numpy(pix[:, 1])[:, None, None] + torch.arange(3)[None, None, :]
        b = torch.from_numpy(band)[:, None, None]
        xs.append(x[b[..., None], torch.arange(3)[None, :, None, None], rows[:, None], cols[:, None]])
        ys.append(f_tgt[torch.from_numpy(band), torch.from_numpy(pix[:, 0]), torch.from_numpy(pix[:, 1])])
    x, y = torch.cat(xs), torch.cat(ys)[:, None, None, None]
    net = build_network(params).to(dev)
    optimizer = torch.optim.SGD(net.parameters(), lr=params.lr, momentum=params.momentum,
                                weight_decay=params.weight_decay)
    if feedback is not None:
        feedback.info(f"DCNN training on {describe_device(dev)}: {len(x)} patches from {len(combos)} "
                      "reference -> target pair combinations.")
    history = train(net, optimizer, x, y, params.epochs, params.batch, torch.nn.functional.mse_loss,
                    params.validation, params.seed, dev, feedback, label="dcnn: ")
    metadata = training_metadata(series.grid, scale, params, 1 + params.window // 2, [p.date for p in pairs],
                                 {"dcnn": history.as_dict()}, dev)
    return {"dcnn": net.state_dict()}, metadata


def predict(
    meta: dict[str, Any], weights: dict[str, Any], series: SceneSeries, dates: list[_dt.date], folder: str,
    scale: float, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date (``dcnn_<date>.tif``)."""
    torch = import_torch()
    from .stfdcnn import change_weights

    params = DcnnParams(**meta["params"])
    dev = resolve_device(device)
    net = build_network(params)
    net.load_state_dict(weights["dcnn"])
    net = net.to(dev).eval()
    plans = {}
    for date in dates:
        around = series.pairs_around(date) if params.two_references else None
        plans[date] = list(around) if around else [series.nearest_pair(date)]
        if feedback is not None:
            feedback.info(f"DCNN {date.isoformat()}: reference pair(s) "
                          + ", ".join(p.date.isoformat() for p in plans[date]))

    def predict_tile(date, tile):
        coarse_pred, valid = read_window(series.coarse_at(date), tile, scale)
        c2 = torch.from_numpy(coarse_pred).to(dev)
        outs, coarse_refs = [], []
        for ref in plans[date]:
            fine, v1 = read_window(ref, tile, scale)
            coarse, v2 = read_window(series.coarse_at(ref.date), tile, scale)
            valid = valid & v1 & v2
            c1 = torch.from_numpy(coarse).to(dev)
            with torch.no_grad():
                outs.append(net(stack_inputs(c2, c1, torch.from_numpy(fine).to(dev)))[:, 0])
            coarse_refs.append(c1)
        out = outs[0]
        if len(outs) == 2:
            w1, w3 = change_weights(c2[:, None], coarse_refs[0][:, None], coarse_refs[1][:, None], params.window)
            out = w1[:, 0] * outs[0] + w3[:, 0] * outs[1]
        r, c = tile.inner_in_outer
        return out[:, r, c].cpu().numpy(), valid[r, c]

    return write_predictions(series, dates, METHOD, folder, predict_tile, scale, halo=int(meta["halo"]),
                             bytes_per_pixel=4 * (params.hidden1 + params.hidden2 + 12), feedback=feedback)
