"""Patch DCNN regression (seed 002: "spatiotemporal fusion using a deep convolutional neural network", regression
of 3 x 3 patches), written as the equivalent fully convolutional network.

Per band, the inputs are the coarse image of the prediction date (bicubic on the fine grid, as stf:resample_coarse
makes it), the coarse image of a reference pair date and the fine image of that date; the target is the fine image
of the prediction date at the patch centre. A regression on a flattened 3 x 3 x 3 patch followed by hidden layers
is exactly a 3 x 3 convolution followed by 1 x 1 convolutions, so training samples 3 x 3 patches and prediction
runs on whole tiles without building patch arrays:

    w = [conv 3x3 (3 -> 64), ReLU, conv 1x1 (64 -> 32), ReLU, conv 1x1 (32 -> 9)](patch)
    fine(t_pred) = fine(t_ref) + dC + sum_{i in 3 x 3} w_i dC_i,        dC = coarse(t_pred) - coarse(t_ref)

The paper gives no layer widths; 64 and 32 follow the other networks of this plugin.

Deviation (residual formulation, as STFDCNN's residual learning): the regression on the 3 x 3 x 3 patch does not
output the fine value itself but the nine weights of a local filter on the coarse change, added to the additive
prediction fine(t_ref) + dC. Its last layer starts at zero, so the untrained network IS the additive baseline and
training can only move from there (the best epoch on the held-out task is kept, :mod:`.validation`); where the
coarse images do not change, the prediction is the reference fine image. Measured on the sample series (mean RMSE
over its 7 predicted dates): a direct regression was still worse than naive after 3 epochs; a skip from the fine
reference alone (naive start) gave blurred outputs worse than additive after 50 epochs (0.0250 vs 0.0183, issue
11); an additive correction F_ref + dC + net(patch) improved the held-out pair dates but made the dates near a
pair worse (0.0212 vs additive 0.0201: it adds a change where there is none); the change filter gives 0.0198 and
converges in about 10 epochs. One network is shared by all bands (each band is a sample); scene borders are
replicated by one pixel.

Training defaults are the paper's Table 1: MSE, SGD with momentum 0.9, learning rate 0.01, weight decay 1e-4,
batch 64, bicubic interpolation; at most 50 epochs, stopped after ``patience`` epochs without improvement of the
held-out RMSE. Samples come from every ordered pair of training pair dates (reference -> target), outside the
validation block, at most ``max_patches`` of them, drawn once with the seed. Pair dates are far apart (64-146
days on the sample) while predictions are usually 8-48 days from a pair, so with ``augment`` each sample is moved
to a random point of the way between its two dates (temporal augmentation): coarse(t) = coarse(t_ref) + a dC,
fine(t) = fine(t_ref) + a dF with a uniform in [0.2, 1], i.e. the network sees small changes as well as large ones.
With ``coarse_noise`` (default) each moved sample also gets the coarse error a change that short really carries,
sqrt(1 - a^2) (n_i - n_j) from the coarse series' own date-to-date errors (:mod:`.coarse_noise`), and validation
moves the held-out pairs a quarter, half and the whole way with that error (:func:`.validation.add_short_gaps`).
Without it the network learned to trust a small coarse change as much as a large one and validation, a pair
spacing from the references, could not see the dates near a pair: no epoch was ever kept. Measured (realistic
simulator, 17-date CIA-like series, 192 pixels, mean RMSE over the 12 predicted dates, trained / untrained):
seed 42 (developed on) 0.02037 / 0.02228 (+8.6 %), seeds 101 and 202 +3.4 % each; 10-date series seed 101 +3.4 %,
seed 202 +2.2 %; the control generator keeps its start.

Prediction from the nearest pair; with ``two_references`` the predictions from the pairs before and after the date
are blended with weights from the coarse change in 9 x 9 windows (STFDCNN's eq. 8 on the coarse images).
Predictions are clamped into the series' value range. On the CPU the network runs in channels-last layout (oneDNN
2.2x faster on 6 x 512 x 512; values agree to float rounding), and a model whose last layer kept its zero start
predicts F_ref + dC without running the network (value for value). Its ReLUs run in place at prediction and a
tile's dates share the reference pairs' images as read: the CIA-size marginal cost per date 23.1 s -> 5.9 s
(issue 28, ``make bench``).
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
from ..fusion import series_value_range, write_predictions
from ..series import SceneSeries, check_encodings
from .coarse_noise import CoarseErrors, coarse_errors
from .common import TileCache, read_image, read_pair_window, read_window
from .modelfile import build_checked, training_metadata
from .training import TensorBatches, is_zero_layer, seed_everything, train, zero_last_layer
from .validation import (SHORT_GAP_NOTE, BlockData, baseline_scores, one_reference_plan, plan_validation,
                         read_block_data, score, short_gaps_used, validation_record)

METHOD = "dcnn"


@dataclass
class DcnnParams:
    """Training settings (defaults: the paper's Table 1, see the module docstring)."""

    epochs: int = 50
    batch: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    hidden1: int = 64
    hidden2: int = 32
    max_patches: int = 50_000
    augment: bool = True
    patience: int = 5
    two_references: bool = False
    window: int = 9
    validation: float = 0.25
    seed: int = 0
    coarse_noise: bool = True

    def validate(self) -> None:
        if self.epochs < 0 or self.batch < 1 or self.max_patches < 1:
            raise InputError("Epochs must be at least 0, the batch size and the number of patches at least 1.")
        if not 0 <= self.validation < 1:
            raise InputError(f"The validation share must be in [0, 1) (got {self.validation}).")

    @property
    def halo(self) -> int:
        return 1 + self.window // 2


def build_network(p: DcnnParams) -> Any:
    """The fully convolutional form of the 3 x 3 patch regression (valid convolution: a 3 x 3 input gives 1 x 1),
    input channels (coarse t_pred, coarse t_ref, fine t_ref). The regression outputs the nine weights w_i of a
    3 x 3 filter applied to the coarse change around the pixel:
    F(t) = F_ref + dC + sum_i w_i dC_i. The last layer starts at zero: the untrained network is the additive
    baseline."""
    torch = import_torch()
    nn = torch.nn

    class PatchRegression(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(nn.Conv2d(3, p.hidden1, 3), nn.ReLU(), nn.Conv2d(p.hidden1, p.hidden2, 1),
                                        nn.ReLU(), nn.Conv2d(p.hidden2, 9, 1))
            zero_last_layer(self.layers[-1])

        def forward(self, x):
            centre = x[:, :, 1:-1, 1:-1]
            change = x[:, 0:1] - x[:, 1:2]  # coarse change dC, [N, 1, h + 2, w + 2]
            weights = self.layers(x)  # [N, 9, h, w]
            neighbours = torch.nn.functional.unfold(change, 3).reshape(change.shape[0], 9, *weights.shape[-2:])
            return centre[:, 2:3] + change[:, :, 1:-1, 1:-1] + (weights * neighbours).sum(1, keepdim=True)

    return PatchRegression()


def stack_inputs(coarse_pred: Any, coarse_ref: Any, fine_ref: Any) -> Any:
    """[B, 3, H, W] network input: each band is a sample with three channels, borders replicated by one pixel."""
    torch = import_torch()
    x = torch.stack([coarse_pred, coarse_ref, fine_ref], dim=1)
    return torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")


def is_identity(net: Any) -> bool:
    """True while the last layer is zero (untrained, or a model that kept its untrained start): the nine weights
    are then zero and the network's output F_ref + dC is computed without running it, value for value."""
    return is_zero_layer(net.layers[-1])


def predict_arrays(net: Any, params: DcnnParams, coarse_pred: Any, refs: list[tuple[Any, Any]]) -> Any:
    """The prediction [B, h, w] from the coarse image of the date and (fine, coarse) of one or two reference
    pairs (tensors [B, h, w]); two references are blended by the coarse change in ``window`` x ``window``."""
    from .stfdcnn import change_weights

    if is_identity(net):
        outs = [f_ref + (coarse_pred - c_ref) for f_ref, c_ref in refs]
    else:
        outs = [net(stack_inputs(coarse_pred, c_ref, f_ref))[:, 0] for f_ref, c_ref in refs]
    if len(outs) == 1:
        return outs[0]
    w1, w3 = change_weights(coarse_pred[:, None], refs[0][1][:, None], refs[1][1][:, None], params.window)
    return w1[:, 0] * outs[0] + w3[:, 0] * outs[1]


def _validator(net: Any, params: DcnnParams, data: BlockData, plan: list, value_range, dev: Any):
    torch = import_torch()

    def tensor(a):
        return torch.from_numpy(a).to(dev)

    def validate() -> float:
        predictions = []
        for target, use in plan:
            out = predict_arrays(net, params, tensor(data.coarse[target]),
                                 [(tensor(data.fine[k]), tensor(data.coarse[k])) for k in use])
            out = out.clamp(*value_range)[(slice(None),) + data.inner]
            predictions.append((target, out.cpu().numpy()))
        return score(predictions, data)

    return validate


def train_dcnn(
    series: SceneSeries, pair_dates: list[_dt.date] | None, scale: float, params: DcnnParams, device: str = "auto",
    feedback: Feedback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the patch regression; returns (state dicts, metadata)."""
    torch = import_torch()
    params.validate()
    check_encodings(series, scale)
    dev = resolve_device(device)
    seed_everything(params.seed)
    grid = series.grid
    chosen, holdout = plan_validation(series.pair_dates, pair_dates, grid.height, grid.width, params.validation)
    pairs = [series.fine_at(d) for d in chosen]
    if len(pairs) < 2:
        raise InputError("The DCNN learns from one pair date to another: it needs at least two pairs.")
    spatial = holdout is not None and holdout.spatial
    excluded = (holdout.training_mask(grid.height, grid.width, margin=1) if spatial  # 3 x 3 patches
                else np.zeros((grid.height, grid.width), bool))
    errors = coarse_errors(series, scale, params.seed) if params.coarse_noise else None
    x, y = _training_patches(series, pairs, params, excluded, scale, errors)
    net = build_network(params).to(dev)
    optimizer = torch.optim.SGD(net.parameters(), lr=params.lr, momentum=params.momentum,
                                weight_decay=params.weight_decay)
    value_range = series_value_range(series, scale)
    validate, scores, plan = None, {}, None
    if holdout is not None:
        data = read_block_data(series, holdout, params.halo, scale)
        if params.two_references:
            plan = [(target, refs) for target, refs in holdout.targets]
            scores = baseline_scores(data, holdout, value_range)
        else:  # one pair: from each neighbouring pair in turn, at short gaps where the series allows
            refs = one_reference_plan(holdout, data, errors)
            plan = [(target, (ref,)) for target, ref in refs]
            scores = baseline_scores(data, holdout, value_range, plan=refs)
        validate = _validator(net, params, data, plan, value_range, dev)
        if feedback is not None:
            feedback.info(f"DCNN {holdout.describe()}.")
            if short_gaps_used(plan):
                feedback.info(f"DCNN: {SHORT_GAP_NOTE}")
    if feedback is not None:
        feedback.info(f"DCNN training on {describe_device(dev)}: {len(x)} patches from "
                      f"{len(pairs) * (len(pairs) - 1)} reference -> target pair combinations.")
    history = train(net, optimizer, TensorBatches(x, y, params.batch, params.seed), params.epochs,
                    torch.nn.functional.mse_loss, validate, params.patience, dev, feedback, label="dcnn: ")
    metadata = training_metadata(grid, scale, params, params.halo, [p.date for p in pairs],
                                 {"dcnn": history.as_dict()}, dev,
                                 validation=validation_record(holdout, history.validation, history.best_epoch,
                                                           scores, plan))
    return {"dcnn": net.state_dict()}, metadata


def _training_patches(series: SceneSeries, pairs: list, params: DcnnParams, excluded: np.ndarray,
                      scale: float, errors: CoarseErrors | None = None) -> tuple[Any, Any]:
    """At most ``max_patches`` training samples: 3 x 3 x 3 input patches [N, 3, 3, 3] and target centres
    [N, 1, 1, 1], spread evenly over the ordered (reference, target) pair combinations, at random valid pixels
    outside ``excluded``. Streamed: a first pass reads each pair's validity, a second reads each pair date once
    and takes what every combination needs from it, so memory holds one pair's images and the patches, whatever
    the number of pairs or the scene size."""
    torch = import_torch()
    rng = np.random.default_rng(params.seed)
    valid = {}
    for p in pairs:
        _, v1 = read_image(p, scale)
        _, v2 = read_image(series.coarse_at(p.date), scale)
        valid[p.date] = v1 & v2 & ~excluded
    bands = series.grid.bands
    combos = list(itertools.permutations([p.date for p in pairs], 2))
    per_combo = int(np.ceil(params.max_patches / len(combos)))
    picks = {}
    for ref, target in combos:
        pixels = np.argwhere(valid[ref] & valid[target])
        count = min(per_combo, len(pixels) * bands)
        if count:
            pick = rng.choice(len(pixels) * bands, count, replace=False)
            picks[(ref, target)] = (pick % bands, pixels[pick // bands])
    if not picks:
        raise InputError("No training patch: the pairs have no pixel that is valid on two dates outside the "
                         "validation block.")
    inputs = {c: np.zeros((len(b), 3, 3, 3), np.float32) for c, (b, _) in picks.items()}
    centres = {c: np.zeros(len(b), np.float32) for c, (b, _) in picks.items()}
    offsets = np.arange(3)
    for p in pairs:
        fine, _ = read_image(p, scale)
        coarse, _ = read_image(series.coarse_at(p.date), scale)
        fine_pad = np.pad(fine, ((0, 0), (1, 1), (1, 1)), mode="edge")
        coarse_pad = np.pad(coarse, ((0, 0), (1, 1), (1, 1)), mode="edge")
        for (ref, target), (band, pix) in picks.items():
            rows = pix[:, 0, None, None] + offsets[None, :, None]
            cols = pix[:, 1, None, None] + offsets[None, None, :]
            b = band[:, None, None]
            if p.date == ref:  # channels 1 and 2: coarse and fine of the reference
                inputs[(ref, target)][:, 1] = coarse_pad[b, rows, cols]
                inputs[(ref, target)][:, 2] = fine_pad[b, rows, cols]
            if p.date == target:  # channel 0: coarse of the target date; the target: its fine centre
                inputs[(ref, target)][:, 0] = coarse_pad[b, rows, cols]
                centres[(ref, target)] = fine[band, pix[:, 0], pix[:, 1]]
    x = np.concatenate(list(inputs.values()))
    y = np.concatenate(list(centres.values()))
    if params.augment:
        # a random point between the two dates: C(t) = C_ref + a dC and F(t) = F_ref + a dF
        a = rng.uniform(0.2, 1.0, len(x)).astype(np.float32)
        x[:, 0] = x[:, 1] + a[:, None, None] * (x[:, 0] - x[:, 1])
        y = x[:, 2, 1, 1] + a * (y - x[:, 2, 1, 1])
        if errors is not None:  # the date-specific coarse error a short gap has (core/deep/coarse_noise.py)
            band = np.concatenate([b for b, _ in picks.values()])
            pix = np.concatenate([q for _, q in picks.values()])
            x[:, 0] += np.sqrt(1 - a * a)[:, None, None] * errors.patches(band, pix, 3, rng, pad=1)
    return torch.from_numpy(x), torch.from_numpy(y)[:, None, None, None]


def predict(
    meta: dict[str, Any], weights: dict[str, Any], series: SceneSeries, dates: list[_dt.date], folder: str,
    scale: float, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date (``dcnn_<date>.tif``)."""
    torch = import_torch()
    params = DcnnParams(**meta["params"])
    dev = resolve_device(device)
    net = build_checked(lambda: build_network(params), weights["dcnn"], "DCNN")
    net = net.to(dev).eval()
    if dev.type == "cpu":  # oneDNN convolves channels-last about 2.2x faster here (measured, 6 x 512 x 512)
        net = net.to(memory_format=torch.channels_last)
    for layer in net.modules():  # prediction only: ReLU in place (no second feature map of the tile; same values)
        if isinstance(layer, torch.nn.ReLU):
            layer.inplace = True
    plans = {}
    for date in dates:
        around = series.pairs_around(date) if params.two_references else None
        plans[date] = list(around) if around else [series.nearest_pair(date)]
        if feedback is not None:
            feedback.info(f"DCNN {date.isoformat()}: reference pair(s) "
                          + ", ".join(p.date.isoformat() for p in plans[date]))

    cache = TileCache()  # the reference pairs' images over the tile in progress (its dates share them, issue 28)

    def reference(ref, tile):
        read = cache.for_tile(tile.index)
        if ref.date not in read:
            read[ref.date] = read_pair_window(series, ref, tile, scale, dev)
        return read[ref.date]

    def predict_tile(date, tile):
        coarse_pred, valid = read_window(series.coarse_at(date), tile, scale)
        refs = []
        for ref in plans[date]:
            fine, coarse, ok = reference(ref, tile)
            valid = valid & ok
            refs.append((fine, coarse))
        with torch.no_grad():
            out = predict_arrays(net, params, torch.from_numpy(coarse_pred).to(dev), refs)
        r, c = tile.inner_in_outer
        return out[:, r, c].cpu().numpy(), valid[r, c]

    return write_predictions(series, dates, METHOD, folder, predict_tile, scale, halo=int(meta["halo"]),
                             bytes_per_pixel=4 * (params.hidden1 + params.hidden2 + 12), feedback=feedback,
                             value_range=series_value_range(series, scale))
