"""DCSTFN: Deep Convolutional SpatioTemporal Fusion Network (Tan, Yue, Di & Tang 2018, "Deriving high
spatiotemporal remote sensing images using deep convolutional network", Remote Sensing 10(7), 1066), the baseline
STF3DCNN (seed 000) is compared with.

Per band (each band is a sample of one shared network, as the authors train one band at a time), from the fine
image F1 and the coarse image C1 of a reference pair date and the coarse image C2 of the prediction date:

* coarse stream (shared by C1 and C2), on the coarse pixels (block means of ``factor`` x ``factor`` fine pixels):
  conv 3x3 (1 -> c0), ReLU, conv 3x3 (c0 -> c1), ReLU, then log2(factor) - 1 times [transposed conv 3x3 stride 2
  (c1 -> c1), ReLU], conv 3x3 (c1 -> c2), ReLU: features at half the fine resolution;
* fine stream: conv 3x3 (1 -> c0), ReLU, conv 3x3 (c0 -> c1), ReLU, max pooling 2, conv 3x3 (c1 -> c1), ReLU,
  conv 3x3 (c1 -> c2), ReLU: features at half the fine resolution;
* fusion in feature space, the STARFM assumption:  P = fine(F1) - coarse(C1) + coarse(C2);
* reconstruction: transposed conv 3x3 stride 2 (c2 -> c1), ReLU, 1x1 conv (c1 -> c0), ReLU, 1x1 conv (c0 -> 1)
  (the authors' PyTorch version's per-pixel dense layers).

Channels (c0, c1, c2) = (64, 96, 128) as the authors' published configuration; coarse factor from the data (16
for MODIS/Landsat, the authors' scale: three transposed convolutions; :mod:`..coarse_grid`); training: MSE, Adam with the learning rate decayed by 0.75 per
epoch (the authors' ExponentialLR), training patches of 160 fine pixels (10 coarse pixels) in their experiments.

Deviations, each measured or forced:
- Residual formulation, as this plugin's other networks: the output is F1 + (C2 - C1) + R(P) - R(fine(F1)), R the
  reconstruction, with the coarse images on the fine grid and R's last layer starting at zero, so the untrained
  network IS the additive baseline and validation keeps the best epoch (:mod:`.validation`). The authors' network
  outputs R(P) directly; from a random start that is far worse than the nearest fine image until it has trained
  for hours on a GPU, which no default run here can afford. Subtracting R(fine(F1)) makes an unchanged coarse pair
  predict F1 exactly: with F1 + (C2 - C1) + R(P) alone the trained network improved the held-out dates but added a
  change to the dates near a pair (measured on the sample: 0.0205 vs additive 0.0201, pooled RMSE over its 7
  dates), as the patch DCNN's first residual form did.
- Learning rate 5e-3, batches of 4 patches: with 1e-3 and 8 (Adam's customary rate) the correction had not moved
  from its zero start after 4 epochs of 96 patches (held-out RMSE unchanged); with 5e-3 the kept epoch beats the
  start on the held-out dates (sample: 0.02544 vs 0.02594).
- Patches are at most ``patch`` fine pixels (default 160, the authors') and shrink to the largest multiple of the
  factor that fits outside the validation block (small scenes); epochs default to 10 (the authors: 30) and each
  epoch draws ``patches_per_epoch`` patches, so a CPU run on a small scene takes about a minute.
- Temporal augmentation (``augment``), as the patch DCNN: each sample is moved to a random point between its two
  pair dates (pairs are far apart; predictions are usually near one), with the coarse error a change that short
  really carries (``coarse_noise``, default; :mod:`.coarse_noise`), and validation on the held-out pairs moved a
  quarter, half and the whole way with that error (:func:`.validation.add_short_gaps`). Without it no epoch beat the
  start on the realistic simulator (seed 101: 3.4 % worse than it). Measured (realistic simulator, mean RMSE over
  the predicted dates, trained / untrained): 10-date 192-pixel series seed 101 0.02637 / 0.02711 (+2.7 %), seed
  202 0.02430 / 0.02456 (+1.1 %); 17-date CIA-like series seed 101 0.01999 / 0.02038 (+1.9 %; its two flood
  dates 9-14 % worse, the others up to 16 % better), seed 42 (developed on, validated a quarter and half of the way
  only) 0.02108 / 0.02228 (+5.4 %); the control generator keeps its start.
- MIN_GAIN (default 5 %, as STFDCNN, STF3DCNN and the refinement): the epoch kept by the noise-guarded selection
  replaces the untrained start (the additive baseline) only when it beats it on the held-out dates by MIN_GAIN,
  checked after training. Measured with the defaults (realistic 192-pixel series, held-out gain of the kept epoch
  -> gain over the 7 predicted dates): seed 42 2.9 % -> -3.1 %, seed 202 4.4 % -> +1.1 %, seed 101 8.9 % ->
  +2.7 %, seed 404 11.1 % -> +0.6 %; checked after choosing it: seed 303 3.4 % -> -1.7 %, seed 505 3.1 % ->
  +0.7 %, seed 1717 11.0 % -> -3.3 %. With the rule 42, 202, 303 and 505 keep the additive start (0.0 %), 101, 404
  and 1717 their epochs: one seed of seven ends worse than its start instead of three (mean 0.0 % instead of
  -0.4 %); the held-out dates do not stand for the predicted ones reliably (open).
- Prediction runs on whole tiles aligned to the coarse pixels with a halo of 5 coarse pixels (the receptive field
  of the coarse stream); the authors cut the scene into patches without overlap.
Predictions are clamped into the series' value range.

Series (issue 28): the dates of a tile predicted from the same pair share the pair's part of the network (the fine
stream, the coarse stream of C1 and R(fine(F1)): about 70 % of the arithmetic), computed once per tile, band and
pair; each date then runs the coarse stream of its C2 and the reconstruction of the fused features (same operations
in the same order: the values equal a date predicted alone, tested). On the CPU the network runs in channels-last
layout (oneDNN about 1.5x faster), and a model whose R kept its zero last layer predicts the additive baseline
without running the streams. Measured (``make bench``, CIA size 2040 x 1720 x 6, factor 4, 2 CPU cores): one date
94.7 s, three dates 146.7 s, so 26.0 s per further date (before: 146.5 s) and about 21 minutes for 46 dates (before:
112). The per-date part alone is about 70 000 multiply-adds per fine pixel and band, 1.5e12 per CIA-size date: at
the 100 GMAC/s that these two cores reach in the large convolutions, at least 15 s per date.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..coarse_grid import resolve_factor
from ..device import describe_device, import_torch, resolve_device
from ..errors import InputError
from ..feedback import Feedback
from ..fusion import series_value_range, write_predictions
from ..series import SceneSeries, check_encodings
from .coarse_noise import CoarseErrors, coarse_errors
from .common import TileCache, patch_positions, read_image, read_pair_window, read_window
from .modelfile import build_checked, training_metadata
from .training import (TensorBatches, copy_state, is_zero_layer, restore_start_below_min_gain, seed_everything,
                       train, zero_last_layer)
from .validation import (SHORT_GAP_NOTE, baseline_scores, one_reference_plan, plan_validation, read_block_data,
                         score, short_gaps_used, validation_record)

METHOD = "dcstfn"


@dataclass
class DcstfnParams:
    """Training settings (defaults in the module docstring)."""

    epochs: int = 10
    lr: float = 5e-3
    lr_decay: float = 0.75
    batch: int = 4
    c0: int = 64  # channels of the first, middle and last feature layers
    c1: int = 96
    c2: int = 128
    factor: int = 0  # 0: from the coarse images (recorded, else estimated; core/coarse_grid.py)
    patch: int = 160
    patches_per_epoch: int = 96
    augment: bool = True
    coarse_noise: bool = True
    patience: int = 4
    validation: float = 0.25
    seed: int = 0
    min_gain: float = 0.05  # held-out share the kept epoch must gain over the untrained start (additive)

    def validate(self) -> None:
        if self.epochs < 0 or self.batch < 1 or self.patches_per_epoch < 1:
            raise InputError("Epochs must be at least 0, the batch size and the patches per epoch at least 1.")
        if not 0 <= self.min_gain < 1:
            raise InputError(f"The minimum held-out gain must be in [0, 1) (got {self.min_gain}).")
        if self.factor and (self.factor < 4 or self.factor & (self.factor - 1)):  # 0: resolved by train_dcstfn
            raise InputError(f"DCSTFN's coarse factor must be a power of two of at least 4 (its coarse stream "
                             f"doubles the resolution log2(factor) - 1 times; got {self.factor}). Resample the "
                             "coarse images so that the factor is 4, 8, 16, 32 ...")
        if self.factor and self.patch < self.factor:
            raise InputError(f"The training patch ({self.patch} pixels) must span at least one coarse pixel "
                             f"({self.factor}).")
        if not 0 <= self.validation < 1:
            raise InputError(f"The validation share must be in [0, 1) (got {self.validation}).")

    @property
    def channels(self) -> tuple[int, int, int]:
        return self.c0, self.c1, self.c2

    @property
    def halo(self) -> int:
        return 5 * self.factor


def build_network(p: DcstfnParams) -> Any:
    """The two-stream network with its residual output (module docstring); input [N, 3, H, W] = (C2, C1, F1) on
    the fine grid with H and W multiples of the factor; output [N, 1, H, W]."""
    torch = import_torch()
    nn = torch.nn
    c0, c1, c2 = (int(c) for c in p.channels)
    ups = int(round(math.log2(p.factor))) - 1

    def conv(a, b):
        return nn.Conv2d(a, b, 3, padding=1)

    def deconv(a, b):
        return nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1)

    class Dcstfn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers = [conv(1, c0), nn.ReLU(), conv(c0, c1), nn.ReLU()]
            for _ in range(ups):
                layers += [deconv(c1, c1), nn.ReLU()]
            self.coarse = nn.Sequential(*layers, conv(c1, c2), nn.ReLU())
            self.fine = nn.Sequential(conv(1, c0), nn.ReLU(), conv(c0, c1), nn.ReLU(), nn.MaxPool2d(2),
                                      conv(c1, c1), nn.ReLU(), conv(c1, c2), nn.ReLU())
            self.reconstruct = nn.Sequential(deconv(c2, c1), nn.ReLU(), nn.Conv2d(c1, c0, 1), nn.ReLU(),
                                             nn.Conv2d(c0, 1, 1))
            zero_last_layer(self.reconstruct[-1])

        def pair_part(self, c1_fine, f1):
            """What depends on the reference pair only: (fine(F1) - coarse(C1), R(fine(F1))). Every date
            predicted from the same pair over the same window shares it (issue 28)."""
            reference = self.fine(f1)
            difference = reference - self.coarse(torch.nn.functional.avg_pool2d(c1_fine, p.factor))
            return difference, self.reconstruct(reference)

        def date_part(self, pair, c2_fine, c1_fine, f1):
            """The output for the prediction date's coarse image C2 from the pair's part (the same operations
            in the same order as one pass: results equal value for value)."""
            difference, reconstructed_reference = pair
            fused = difference + self.coarse(torch.nn.functional.avg_pool2d(c2_fine, p.factor))
            # the reconstruction of the reference's own features is subtracted: no coarse change, no correction
            return f1 + (c2_fine - c1_fine) + self.reconstruct(fused) - reconstructed_reference

        def forward(self, x):
            c2_fine, c1_fine, f1 = x[:, 0:1], x[:, 1:2], x[:, 2:3]
            return self.date_part(self.pair_part(c1_fine, f1), c2_fine, c1_fine, f1)

    return Dcstfn()


def is_identity(net: Any) -> bool:
    """True while R's last layer is zero (untrained, or a model that kept its untrained start): R(x) = 0 for any
    finite x, so the output F1 + (C2 - C1) + R(P) - R(fine(F1)) is the additive prediction value for value and the
    streams need not run."""
    return is_zero_layer(net.reconstruct[-1])


def apply(net: Any, params: DcstfnParams, coarse_pred: Any, coarse_ref: Any, fine_ref: Any, y0: int = 0,
          x0: int = 0, shared: dict | None = None, channels_last: bool = False) -> Any:
    """The prediction [B, h, w] for a window whose top-left pixel is (y0, x0) of the scene (tensors [B, h, w]):
    the window is padded (edges replicated) so that the coarse pixels are those of the scene's grid.

    ``shared`` (kept by the caller for one window and one reference pair): the pair's part of the network per
    band (``pair_part``: the fine stream, the coarse stream of C1 and R(fine(F1)), about 70 % of the work), computed
    by the first date and reused by the others; the results equal those computed alone. ``channels_last``: the
    input in channels-last layout (for a network converted to it: oneDNN convolves it about 1.5x faster on the
    CPU, measured on 384 x 384 windows; the values agree to float rounding)."""
    torch = import_torch()
    if is_identity(net):
        return fine_ref + (coarse_pred - coarse_ref)
    f = params.factor
    h, w = fine_ref.shape[-2:]
    top, left = y0 % f, x0 % f
    bottom, right = -(top + h) % f, -(left + w) % f
    x = torch.stack([coarse_pred, coarse_ref, fine_ref], dim=1)
    x = torch.nn.functional.pad(x, (left, right, top, bottom), mode="replicate")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # band by band: the full-resolution feature maps of one band at a time (larger tiles in the same memory)
    if shared is None:
        return torch.cat([net(x[b:b + 1]) for b in range(x.shape[0])])[:, 0, top:top + h, left:left + w]
    out = []
    for b in range(x.shape[0]):
        xb = x[b:b + 1]
        if b not in shared:
            shared[b] = net.pair_part(xb[:, 1:2], xb[:, 2:3])
        out.append(net.date_part(shared[b], xb[:, 0:1], xb[:, 1:2], xb[:, 2:3]))
    return torch.cat(out)[:, 0, top:top + h, left:left + w]


def train_dcstfn(
    series: SceneSeries, pair_dates: list[_dt.date] | None, scale: float, params: DcstfnParams, device: str = "auto",
    feedback: Feedback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train DCSTFN on every ordered (reference, target) combination of the training pairs; returns (state dicts,
    metadata)."""
    torch = import_torch()
    params.validate()
    params = dataclasses.replace(params, factor=resolve_factor(series, params.factor, "DCSTFN", feedback))
    params.validate()
    check_encodings(series, scale)
    dev = resolve_device(device)
    seed_everything(params.seed)
    grid = series.grid
    chosen, holdout = plan_validation(series.pair_dates, pair_dates, grid.height, grid.width, params.validation)
    pairs = [series.fine_at(d) for d in chosen]
    if len(pairs) < 2:
        raise InputError("DCSTFN learns from one pair date to another: it needs at least two pairs.")
    spatial = holdout is not None and holdout.spatial
    excluded = (holdout.training_mask(grid.height, grid.width) if spatial  # whole patches outside
                else np.zeros((grid.height, grid.width), bool))
    errors = coarse_errors(series, scale, params.seed) if params.coarse_noise else None
    x, y, size = _training_patches(series, pairs, params, excluded, scale, feedback, errors)
    net = build_network(params).to(dev)
    optimizer = torch.optim.Adam(net.parameters(), lr=params.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, params.lr_decay)
    value_range = series_value_range(series, scale)
    validate, scores, plan = None, {}, None
    if holdout is not None:
        data = read_block_data(series, holdout, params.halo, scale)
        plan = one_reference_plan(holdout, data, errors)  # from each neighbouring pair, at short gaps if it can
        validate = _validator(net, params, data, plan, value_range, dev)
        scores = baseline_scores(data, holdout, value_range, plan=plan)
        if feedback is not None:
            feedback.info(f"DCSTFN {holdout.describe()}.")
            if short_gaps_used(plan):
                feedback.info(f"DCSTFN: {SHORT_GAP_NOTE}")
    if feedback is not None:
        feedback.info(f"DCSTFN training on {describe_device(dev)}: {len(x)} patches of {size} x {size} pixels from "
                      f"{len(pairs) * (len(pairs) - 1)} reference -> target pair combinations, "
                      f"{params.patches_per_epoch} per epoch.")
    batches = _EpochSample(TensorBatches(x, y, params.batch, params.seed), params.patches_per_epoch, scheduler)
    start = copy_state(net)
    history = train(net, optimizer, batches, params.epochs, torch.nn.functional.mse_loss, validate,
                    params.patience, dev, feedback, label="dcstfn: ")
    restore_start_below_min_gain(net, start, history, params.min_gain, feedback,
                                 "DCSTFN keeps its untrained start (the additive baseline)")
    metadata = training_metadata(grid, scale, params, params.halo, [p.date for p in pairs],
                                 {"dcstfn": history.as_dict()}, dev, patch=size,
                                 validation=validation_record(holdout, history.validation, history.best_epoch,
                                                           scores, plan))
    return {"dcstfn": net.state_dict()}, metadata


class _EpochSample:
    """``patches_per_epoch`` patches per epoch from a larger shuffled set, and the learning-rate decay after
    every epoch (the authors' ExponentialLR)."""

    def __init__(self, batches: TensorBatches, per_epoch: int, scheduler: Any) -> None:
        self.batches, self.scheduler = batches, scheduler
        self.count = max(1, math.ceil(min(per_epoch, batches.samples) / batches.batch))

    def __len__(self) -> int:
        return self.count

    @property
    def samples(self) -> int:
        return min(self.count * self.batches.batch, self.batches.samples)

    def __call__(self, epoch: int):
        if epoch > 0:
            self.scheduler.step()
        return itertools.islice(self.batches(epoch), self.count)


def _validator(net, params, data, plan, value_range, dev):
    torch = import_torch()

    def tensor(a):
        return torch.from_numpy(a).to(dev)

    def validate() -> float:
        predictions = []
        w = data.window
        for target, ref in plan:
            out = apply(net, params, tensor(data.coarse[target]), tensor(data.coarse[ref]), tensor(data.fine[ref]),
                        w.y, w.x)
            predictions.append((target, out.clamp(*value_range)[(slice(None),) + data.inner].cpu().numpy()))
        return score(predictions, data)

    return validate


def _training_patches(series: SceneSeries, pairs: list, params: DcstfnParams, excluded: np.ndarray, scale: float,
                      feedback: Feedback | None, errors: CoarseErrors | None = None) -> tuple[Any, Any, int]:
    """Training samples: inputs [N, 3, P, P] (C2, C1, F1 on the fine grid) and targets [N, 1, P, P] (F2), one band
    of one patch of one ordered pair combination each; patches aligned to the coarse pixels, outside the
    validation block, with every pixel valid on both dates. P is ``patch`` or less on a small scene."""
    torch = import_torch()
    f = params.factor
    rng = np.random.default_rng(params.seed)
    images = {}
    for p in pairs:
        fine, v1 = read_image(p, scale)
        coarse, v2 = read_image(series.coarse_at(p.date), scale)
        images[p.date] = (fine, coarse, v1 & v2)
    grid = series.grid
    size = (min(params.patch, grid.height, grid.width) // f) * f
    combos = list(itertools.permutations([p.date for p in pairs], 2))
    positions: dict = {}
    while size >= f:
        positions = {}
        for ref, target in combos:
            ok = images[ref][2] & images[target][2]
            found = [(y, x) for y, x in patch_positions(ok, size, f, excluded) if y % f == 0 and x % f == 0]
            if found:
                positions[(ref, target)] = found
        if positions:
            break
        size -= f
    if not positions:
        raise InputError("No DCSTFN training patch: the pairs have no block of coarse pixels that is valid on two "
                         "dates outside the validation block.")
    if size < params.patch and feedback is not None:
        feedback.info(f"DCSTFN: training patches of {size} pixels (the scene outside the validation block is too "
                      f"small for {params.patch}).")
    bands = grid.bands
    total = max(params.patches_per_epoch * 4, len(positions))
    per_combo = math.ceil(total / len(positions))
    xs, ys, where = [], [], []
    for (ref, target), found in positions.items():
        f1, c1, _ = images[ref]
        f2, c2, _ = images[target]
        for i in rng.choice(len(found) * bands, min(per_combo, len(found) * bands), replace=False):
            (y, x), b = found[i // bands], i % bands
            window = (b, slice(y, y + size), slice(x, x + size))
            xs.append(np.stack([c2[window], c1[window], f1[window]]))
            ys.append(f2[window][None])
            where.append((b, y, x))
    x = np.stack(xs).astype(np.float32)
    y = np.stack(ys).astype(np.float32)
    if params.augment:
        a = rng.uniform(0.2, 1.0, len(x)).astype(np.float32)[:, None, None]
        x[:, 0] = x[:, 1] + a * (x[:, 0] - x[:, 1])
        y[:, 0] = x[:, 2] + a * (y[:, 0] - x[:, 2])
        if errors is not None:  # the date-specific coarse error a short gap has (core/deep/coarse_noise.py)
            where_ = np.asarray(where)
            x[:, 0] += np.sqrt(1 - a * a) * errors.patches(where_[:, 0], where_[:, 1:], size, rng)
    return torch.from_numpy(x), torch.from_numpy(y), size


def predict(
    meta: dict[str, Any], weights: dict[str, Any], series: SceneSeries, dates: list[_dt.date], folder: str,
    scale: float, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date from its nearest pair (``dcstfn_<date>.tif``)."""
    torch = import_torch()
    params = DcstfnParams(**meta["params"])
    dev = resolve_device(device)
    net = build_checked(lambda: build_network(params), weights["dcstfn"], "DCSTFN")
    net = net.to(dev).eval()
    channels_last = dev.type == "cpu"
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for date in dates:
        if feedback is not None:
            feedback.info(f"DCSTFN {date.isoformat()}: reference pair {series.nearest_pair(date).date.isoformat()}")

    # issue 28: the dates of a tile that share their reference pair share the pair's part of the network
    # (write_predictions serves every date of a tile in turn); kept for one tile and one pair at a time
    references = [series.nearest_pair(date).date for date in dates]
    sharing = len(set(references)) < len(references)
    cache = TileCache()  # keyed by (tile, pair): one pair's feature maps at a time

    def predict_tile(date, tile):
        ref = series.nearest_pair(date)
        coarse_pred, valid = read_window(series.coarse_at(date), tile, scale)
        current = cache.for_tile((tile.index, ref.date))
        if not current:
            current.update(pair={}, inputs=read_pair_window(series, ref, tile, scale, dev))
        fine, coarse, pair_valid = current["inputs"]
        valid = valid & pair_valid
        with torch.no_grad():
            out = apply(net, params, torch.from_numpy(coarse_pred).to(dev), coarse, fine, tile.outer.y, tile.outer.x,
                        current["pair"] if sharing else None, channels_last)
        r, c = tile.inner_in_outer
        return out[:, r, c].cpu().numpy(), valid[r, c]

    c0, c1, c2 = params.channels
    bands = series.grid.bands  # one band's feature maps at a time, the inputs and outputs of every band
    per_pixel = (8 * (c0 + c1) + 64) / bands + 24
    if sharing:  # the pair's part of every band: c2 feature maps at half resolution and R(fine(F1)), float32
        per_pixel += c2 + 4 + 8
    return write_predictions(series, dates, METHOD, folder, predict_tile, scale, halo=int(meta["halo"]),
                             bytes_per_pixel=per_pixel, feedback=feedback,
                             value_range=series_value_range(series, scale))
