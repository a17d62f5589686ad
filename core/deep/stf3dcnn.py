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
(dF_k = dC_k + net(dC_k)). Choices of ours, documented because the paper does not give them (issue 11):

* the last layer starts at zero, so the untrained network IS the additive prediction dF = dC (STARFM's
  assumption) and training can only move from there;
* the convolutions have no bias: with LeakyReLU the network is then positively homogeneous,
  net(a dC) = a net(dC) for a >= 0 and net(0) = 0, so no coarse change gives no fine change and what the network
  learns on the large changes between pair dates scales to the small changes near a pair. With biases the
  network was trained only at the time offsets between pairs and got worse the longer it trained on the dates
  in between (30 epochs: 0.0331 mean RMSE on the sample vs 0.0165 untrained);
* temporal augmentation: every training sample is a random sub-sequence of the dates (the reference k, at least
  one other pair, each other date kept with probability 1/2), so the pairs sit at every time offset and position
  in the sequence, as the dates to predict do;
* ``coarse_noise`` (option, off): each batch also gets one date inserted next to the reference, a random fraction
  a of the way to a kept pair, with the coarse error of a gap that short (:mod:`.coarse_noise`), and validation
  predicts the held-out dates moved a quarter, half and the whole way (:func:`.validation.add_short_gaps`) through
  the whole-series pass and the time weighting. Measured (realistic simulator, mean RMSE over the predicted dates,
  gain over the untrained start, off -> on): 17-date CIA-like series seed 42 (developed on) 0 -> +9.9 %, seed 101
  +4.4 -> +4.0 %, seed 202 0 -> -0.5 %; the 10-date sample-size series seed 101 0 -> -4.1 %: the learned shrinking
  of the coarse change helps the dates near a pair (-7 to -13 %) and hurts the two flood dates (+12 to +16 %), a
  large change the network cannot tell from noise (it is positively homogeneous, so a change's size does not change
  its gain) and that no pair shows. So it stays off; the DCNN and DCSTFN, which can tell, have it on;
* validation on the task (:mod:`.validation`): every pair date of a held-out block is predicted as if unknown,
  through the whole-series pass and the time weighting, from the other pairs; the best epoch is kept (epoch 0 is
  the untrained model) and training stops after ``patience`` epochs without improvement. The kept epoch replaces
  the untrained start only when it gains at least ``min_gain`` (5 %, as STFDCNN and the refinement) on the held-out
  dates. Measured (realistic 192-pixel series, ``bench/ceiling.py`` with twice the pairs, 2026-12-04): held-out
  gains of 1.7 % (seed 303) and 4.3 % (seed 101) came with -2.1 % and -3.3 % over the predicted dates (the network
  shrinks the coarse change, which helped the dates near the held-out ones and hurt 2021-07-06 / 08-07 by 6-7 %);
  the CIA-like realistic seed 101 (5 pairs) kept its epoch (5.5 % held out, +4.4 % predicted).

The loss is the MSE over the dates with a known fine image other than k (masked), on spatio-temporal sub-cubes of
``patch`` x ``patch`` pixels read at ``windows`` random positions outside the validation block (memory bounded by
``windows``, whatever the scene size). Defaults: depth 3 (the paper found fewer layers more accurate and faster),
width 24 (4 filters per band), Adam with learning rate 1e-3, at most 30 epochs of ``windows`` sub-cubes.

Prediction: P_k(t) = F(k) + dC_k(t) + net(dC_k)(t) for every date t at once. Time weighting (the paper's ablation):
``off`` uses the nearest pair only; ``distance`` blends the pairs before and after t with weights inversely
proportional to the number of days; ``change`` blends them with weights inversely proportional to the mean
absolute coarse change, per band, mean over the scene's valid pixels of |C(t) - C(k)|. Dates before the first or
after the last pair use the nearest pair. The time axis is the sequence of dates (the network does not see the
number of days between them). Space is tiled with a halo of the spatial receptive field; time is never cut.
Predictions are clamped into the series' value range.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..coarse_grid import resolve_factor
from ..device import describe_device, import_torch, resolve_device
from ..errors import InputError
from ..feedback import Feedback
from ..fusion import series_value_range, write_predictions
from ..raster import keep_open
from ..series import SceneSeries, check_encodings, nearest_date, read_item
from ..tiles import Window
from .coarse_noise import coarse_errors
from .guided import build_branch, guided_radius
from .modelfile import build_checked, training_metadata
from .training import Adam, copy_state, is_zero_layer, restore_start_below_min_gain, seed_everything, train, \
    zero_last_layer
from .validation import (SHORT_GAP_NOTE, HoldOut, add_short_gaps, baseline_scores, plan_validation, read_block_data,
                         reference_plan, score, short_gaps_used, validation_record)

METHOD = "stf3dcnn"
TIME_WEIGHTS = ("off", "distance", "change")


@dataclass
class Stf3dcnnParams:
    """Network and training settings (the paper's are not all given; these are documented defaults)."""

    depth: int = 3
    width: int = 24
    kernel_time: int = 3
    kernel_space: int = 3
    residual_blocks: int = 0
    band_groups: bool = True
    epochs: int = 30
    batch: int = 8
    lr: float = 1e-3
    patch: int = 32
    windows: int = 128
    patience: int = 5
    time_weighting: str = "distance"
    validation: float = 0.25
    seed: int = 0
    coarse_noise: bool = False  # short-gap dates in training and validation (:mod:`.coarse_noise`)
    min_gain: float = 0.05  # held-out share the kept epoch must gain over the untrained start
    guided: bool = False  # the guided allocation branch (:mod:`.guided`) beside the 3D FCN (measured: no gain yet)
    guided_width: int = 32
    factor: int = 0       # coarse pixels in fine pixels for the branch; 0: from the coarse images

    def validate(self) -> None:
        if self.depth < 2:
            raise InputError(f"The network needs at least 2 layers (got {self.depth}).")
        if self.kernel_time % 2 == 0 or self.kernel_space % 2 == 0:
            raise InputError("Kernel sizes must be odd.")
        if self.time_weighting not in TIME_WEIGHTS:
            raise InputError(f"Unknown time weighting '{self.time_weighting}'; use one of {', '.join(TIME_WEIGHTS)}.")
        if self.epochs < 0 or self.batch < 1 or self.windows < 1:
            raise InputError("Epochs must be at least 0, the batch size and the number of sub-cubes at least 1.")
        if not 0 <= self.validation < 1:
            raise InputError(f"The validation share must be in [0, 1) (got {self.validation}).")
        if not 0 <= self.min_gain < 1:
            raise InputError(f"The minimum held-out gain must be in [0, 1) (got {self.min_gain}).")

    @property
    def spatial_radius(self) -> int:
        layers = self.depth + 2 * self.residual_blocks
        radius = layers * (self.kernel_space // 2)
        return max(radius, guided_radius(self.factor or 16)) if self.guided else radius


def build_network(p: Stf3dcnnParams, bands: int) -> Any:
    """The 3D FCN: [N, bands, T, H, W] -> [N, bands, T, H, W]; dF = dC + net(dC), no biases (net(0) = 0), last
    layer zero (untrained: dF = dC). With ``guided`` the input also carries F(k) (channels bands..2 bands, the same
    on every date) and dF = dC + net(dC) + G(F(k), dC(t)) date by date, G the guided allocation branch."""
    torch = import_torch()
    nn = torch.nn
    k = (p.kernel_time, p.kernel_space, p.kernel_space)
    pad = (p.kernel_time // 2, p.kernel_space // 2, p.kernel_space // 2)
    groups = bands if p.band_groups else 1
    width = hidden_width(p, bands)

    def conv(cin, cout):
        return nn.Conv3d(cin, cout, k, padding=pad, bias=False, groups=groups)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = conv(width, width)
            self.b = conv(width, width)

        def forward(self, x):
            return torch.nn.functional.leaky_relu(x + self.b(torch.nn.functional.leaky_relu(self.a(x), 0.2)), 0.2)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers = [conv(bands, width), nn.LeakyReLU(0.2)]
            for _ in range(p.depth - 2):
                layers += [conv(width, width), nn.LeakyReLU(0.2)]
            layers += [Block() for _ in range(p.residual_blocks)]
            layers.append(conv(width, bands))
            zero_last_layer(layers[-1])
            self.body = nn.Sequential(*layers)
            self.branch = build_branch(bands, p.factor or 16, p.guided_width) if p.guided else None

        def forward(self, x):
            if self.branch is None:
                return x + self.body(x)
            change, fine = x[:, :bands], x[:, bands:]
            n, b, t, h, w = change.shape
            flat = change.transpose(1, 2).reshape(n * t, b, h, w)
            ref = fine.transpose(1, 2).reshape(n * t, b, h, w)
            guided = self.branch(ref, flat).reshape(n, t, b, h, w).transpose(1, 2)
            return change + self.body(change) + guided

    return Net()


def hidden_width(p: Stf3dcnnParams, bands: int) -> int:
    """Hidden channels: ``width``, rounded up to a multiple of the band count with ``band_groups``."""
    return -(-p.width // bands) * bands if p.band_groups else p.width


def masked_mse(output: Any, target: Any) -> Any:
    """MSE over the dates flagged in the last channel of ``target`` ([N, B + 1, T, H, W])."""
    mask = target[:, -1:]
    diff = (output - target[:, :-1]) * mask
    return (diff * diff).sum() / (mask.sum() * output.shape[1]).clamp_min(1.0)


def _read_cube(series: SceneSeries, window: Window | None, scale: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Coarse [B, T, h, w] for every date, fine {date: [B, h, w]} for the pairs, validity [h, w]."""
    coarse, valid, fine = [], None, {}
    for c in series.coarse:
        data, ok = read_item(c, window, scale)
        coarse.append(data)
        valid = ok if valid is None else valid & ok
    for f in series.fine:
        data, ok = read_item(f, window, scale)
        fine[f.date] = data
        valid &= ok
    return np.stack(coarse, axis=1), valid, fine


class SubsequenceBatches:
    """Training batches of random sub-sequences (module docstring): each sample is a preloaded sub-cube with a
    random reference pair k and a random subset of the dates; input dC_k, target dF_k on the kept pairs (mask in
    the last channel). One batch shares its subset of dates (tensors of one length)."""

    def __init__(self, coarse: Any, fine: Any, pair_index: list[int], batch: int, seed: int,
                 with_reference: bool = False, errors: Any = None) -> None:
        self.coarse, self.fine = coarse, fine  # [N, B, T, h, w], [N, B, P, h, w]
        self.errors = errors  # [N, B, R, h, w]: the coarse error fields of each sub-cube (short-gap dates), or None
        self.pair_index, self.batch = pair_index, batch
        self.with_reference = with_reference  # input also carries F(k) on every date (the guided branch)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return max(1, -(-self.coarse.shape[0] // self.batch))

    @property
    def samples(self) -> int:
        return int(self.coarse.shape[0])

    def __call__(self, epoch: int):
        torch = import_torch()
        n, t = self.coarse.shape[0], self.coarse.shape[2]
        order = self.rng.permutation(n)
        pairs = len(self.pair_index)
        for b in range(len(self)):
            idx = torch.from_numpy(order[b * self.batch:(b + 1) * self.batch])
            k = int(self.rng.integers(pairs))
            others = [j for j in range(pairs) if j != k]
            kept_pairs = [j for j in others if self.rng.random() < 0.5] or [int(self.rng.choice(others))]
            keep = {self.pair_index[k]} | {self.pair_index[j] for j in kept_pairs}
            keep |= {d for d in range(t) if d not in self.pair_index and self.rng.random() < 0.5}
            dates = sorted(keep)
            coarse = self.coarse[idx][:, :, dates]
            x = coarse - self.coarse[idx][:, :, self.pair_index[k]:self.pair_index[k] + 1]
            y = torch.zeros((len(idx), x.shape[1] + 1) + tuple(x.shape[2:]))
            for j in kept_pairs:
                pos = dates.index(self.pair_index[j])
                y[:, :-1, pos] = self.fine[idx][:, :, j] - self.fine[idx][:, :, k]
                y[:, -1, pos] = 1.0
            if self.errors is not None:
                x, y = self._short_gap(idx, k, kept_pairs, dates, x, y)
            if self.with_reference:
                ref = self.fine[idx][:, :, k:k + 1].expand(-1, -1, x.shape[2], -1, -1)
                x = torch.cat([x, ref], 1)
            yield x, y


    def _short_gap(self, idx: Any, k: int, kept_pairs: list[int], dates: list[int], x: Any, y: Any):
        """Insert one date next to the reference k, a random fraction a in [0.2, 1] of the way towards a kept pair
        j, with the coarse error of a gap that short (:mod:`.coarse_noise`): input
        a (C_j - C_k) + sqrt(1 - a^2) (n_r1 - n_r2), target a (F_j - F_k). The dates the network predicts are
        mostly that near a pair, where the pairs' own targets are a pair spacing away."""
        torch = import_torch()
        n = len(idx)
        j = kept_pairs[int(self.rng.integers(len(kept_pairs)))]
        pk, pj = self.pair_index[k], self.pair_index[j]
        a = torch.from_numpy(self.rng.uniform(0.2, 1.0, n).astype(np.float32)).reshape(n, 1, 1, 1)
        count = self.errors.shape[2]
        r1 = self.rng.integers(0, count, n)
        r2 = (r1 + self.rng.integers(1, count, n)) % count
        errors = self.errors[idx]
        rows = torch.arange(n)
        noise = errors[rows, :, torch.from_numpy(r1)] - errors[rows, :, torch.from_numpy(r2)]  # [n, B, h, w]
        coarse = self.coarse[idx]
        change = a * (coarse[:, :, pj] - coarse[:, :, pk]) + torch.sqrt(1 - a * a) * noise
        fine = self.fine[idx]
        target = torch.cat([a * (fine[:, :, j] - fine[:, :, k]), torch.ones_like(change[:, :1])], 1)
        pos = dates.index(pk) + (1 if pj > pk else 0)
        x = torch.cat([x[:, :, :pos], change[:, :, None], x[:, :, pos:]], 2)
        y = torch.cat([y[:, :, :pos], target[:, :, None], y[:, :, pos:]], 2)
        return x, y


def _sample_windows(series: SceneSeries, params: Stf3dcnnParams, holdout: HoldOut | None, scale: float,
                    size: int, pair_dates: list[_dt.date]) -> tuple[np.ndarray, np.ndarray]:
    """``windows`` sub-cubes at random positions entirely valid and outside the validation block (``holdout``
    None: anywhere); the fine images of ``pair_dates`` (the training pairs) only."""
    grid = series.grid
    rng = np.random.default_rng(params.seed)
    coarse_all, fine_all = [], []
    tries = 0
    with keep_open():
        while len(coarse_all) < params.windows and tries < 20 * params.windows:
            tries += 1
            y = int(rng.integers(0, grid.height - size + 1))
            x = int(rng.integers(0, grid.width - size + 1))
            if holdout is not None and holdout.overlaps(y, x, size, size):
                continue
            coarse, valid, fine = _read_cube(series, Window(x, y, size, size), scale)
            if not valid.all():
                continue
            coarse_all.append(coarse)
            fine_all.append(np.stack([fine[d] for d in pair_dates], axis=1))
    if not coarse_all:
        raise InputError("No training sub-cube without nodata outside the validation block; choose a smaller "
                         "sub-cube size (PATCH).")
    return np.stack(coarse_all), np.stack(fine_all)


def train_stf3dcnn(
    series: SceneSeries, scale: float, params: Stf3dcnnParams, device: str = "auto",
    feedback: Feedback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train on sub-sequences of sub-cubes of the series; returns (state dicts, metadata)."""
    torch = import_torch()
    params.validate()
    if params.guided and not params.factor:
        params = dataclasses.replace(params, factor=resolve_factor(series, 0, "STF3DCNN's guided branch", feedback))
    check_encodings(series, scale)
    if len(series.fine) < 2:
        raise InputError("STF3DCNN learns the fine change between pair dates: it needs at least two pairs.")
    dev = resolve_device(device)
    seed_everything(params.seed)
    grid = series.grid
    chosen, holdout = plan_validation(series.pair_dates, None, grid.height, grid.width, params.validation)
    spatial = holdout is not None and holdout.spatial
    size = min(max(params.patch, 3 * params.factor if params.guided else 0), grid.height, grid.width)
    if spatial:  # sub-cubes must fit beside the block
        size = min(size, max(grid.height - holdout.block.height, grid.width - holdout.block.width))
    coarse, fine = _sample_windows(series, params, holdout if spatial else None, scale, size, chosen)
    pair_index = [series.dates.index(d) for d in chosen]
    errors = coarse_errors(series, scale, params.seed) if params.coarse_noise else None
    fields = None if errors is None else torch.from_numpy(errors.fields_of(coarse, [c.date for c in series.coarse]))
    batches = SubsequenceBatches(torch.from_numpy(coarse), torch.from_numpy(fine), pair_index, params.batch,
                                 params.seed, with_reference=params.guided, errors=fields)
    net = build_network(params, grid.bands).to(dev)
    value_range = series_value_range(series, scale)
    validate, scores, short = None, {}, []
    if holdout is not None:
        data = read_block_data(series, holdout, params.spatial_radius, scale)
        cube = np.stack([read_item(c, data.window, scale)[0] for c in series.coarse], 1)
        short = add_short_gaps(errors, data, reference_plan(holdout)) if errors is not None else []
        if short:
            validate = _short_gap_validator(net, params, series, holdout, data, cube, short, value_range, dev)
            scores = baseline_scores(data, holdout, value_range, plan=short)
        else:
            changes = {}
            if params.time_weighting == "change":
                changes = mean_abs_change(series, [(t, k) for t, refs in holdout.targets if len(refs) == 2
                                                   for k in refs], scale)
            validate = _validator(net, params, series, holdout, data, cube, value_range, dev, changes)
            scores = baseline_scores(data, holdout, value_range)
        if feedback is not None:
            feedback.info(f"STF3DCNN {holdout.describe()}.")
            if short_gaps_used(short):
                feedback.info(f"STF3DCNN: {SHORT_GAP_NOTE}")
    if feedback is not None:
        feedback.info(f"STF3DCNN training on {describe_device(dev)}: {len(coarse)} sub-cubes of {size} x {size} "
                      f"pixels x {len(series.dates)} dates (random sub-sequences), pairs on "
                      + ", ".join(d.isoformat() for d in chosen))
    optimizer = Adam(net.parameters(), lr=params.lr)  # torch.optim.Adam's arithmetic (training.Adam)
    if dev.type == "cpu":  # channels-last for oneDNN's grouped 3D convolutions; back to contiguous after
        net.body = net.body.to(memory_format=torch.channels_last_3d)
    start = copy_state(net)
    history = train(net, optimizer, batches, params.epochs, masked_mse, validate, params.patience, dev, feedback,
                    label="stf3dcnn: ", bf16=True)
    net.body = net.body.to(memory_format=torch.contiguous_format)
    restore_start_below_min_gain(net, start, history, params.min_gain, feedback, "STF3DCNN keeps its untrained start")
    metadata = training_metadata(grid, scale, params, params.spatial_radius, chosen,
                                 {"stf3dcnn": history.as_dict()}, dev,
                                 training_dates=[d.isoformat() for d in series.dates],
                                 validation=validation_record(holdout, history.validation, history.best_epoch,
                                                              scores, short))
    return {"stf3dcnn": net.state_dict()}, metadata


def _validator(net, params, series, holdout, data, cube, value_range, dev, changes):
    """Predict every held-out pair date of the block through the whole-series pass and the time weighting
    (``changes``: the 'change' weighting's mean absolute coarse changes, as prediction computes them)."""
    torch = import_torch()
    dates = series.dates

    def validate() -> float:
        c = torch.from_numpy(cube).to(dev)
        outputs = {}
        predictions = {}
        for target, refs in holdout.targets:
            plan = _plan(target, refs, params.time_weighting, changes)
            for k, _ in plan:
                if k not in outputs:
                    outputs[k] = _series_pass(net, c, dates.index(k), torch.from_numpy(data.fine[k]).to(dev))
            out = _blend(plan, outputs, dates.index(target), dev)
            predictions[target] = out.clamp(*value_range)[(slice(None),) + data.inner].cpu().numpy()
        return score(predictions, data)

    return validate


def _short_gap_validator(net, params, series, holdout, data, cube, plan, value_range, dev):
    """Predict every short-gap target of ``plan`` (:func:`.validation.add_short_gaps`: a fraction a of the way
    from a reference r to a held-out date) as a date of the series is predicted: its coarse image inserted next to r
    in the sequence, a whole-series pass from each of the held-out date's neighbouring pairs, blended by the time
    weighting at its date t_r + a (t_target - t_r) (``change``: by its own mean absolute coarse changes)."""
    torch = import_torch()
    dates = [c.date for c in series.coarse]
    refs_of = dict(holdout.targets)

    def validate() -> float:
        c = torch.from_numpy(cube).to(dev)
        predictions = []
        for key, ref in plan:
            r = dates.index(ref)
            pos = r + (1 if key.target > ref else 0)
            sequence = torch.cat([c[:, :pos], torch.from_numpy(data.coarse[key]).to(dev)[:, None], c[:, pos:]], 1)
            when = ref + _dt.timedelta(days=key.fraction * (key.target - ref).days)
            refs = refs_of[key.target]
            changes = {}
            if params.time_weighting == "change" and len(refs) == 2:
                changes = {(when, k): np.abs(data.coarse[key] - data.coarse[k]).mean(axis=(1, 2)) for k in refs}
            outputs = {}
            for k, _ in (weights := _plan(when, refs, params.time_weighting, changes)):
                i = dates.index(k)
                outputs[k] = _series_pass(net, sequence, i if i < pos else i + 1,
                                          torch.from_numpy(data.fine[k]).to(dev))
            out = _blend(weights, outputs, pos, dev)
            predictions.append((key, out.clamp(*value_range)[(slice(None),) + data.inner].cpu().numpy()))
        return score(predictions, data)

    return validate


def _blend(plan: list[tuple[_dt.date, Any]], outputs: dict, t: int, dev: Any) -> Any:
    """sum_k w_k P_k(t) over the plan's reference pairs (a weight is a number or one per band)."""
    torch = import_torch()
    out = None
    for k, w in plan:
        part = outputs[k][:, t]
        w = torch.as_tensor(np.asarray(w, np.float32), device=dev).reshape(-1, 1, 1) if np.ndim(w) else w
        out = part * w if out is None else out + part * w
    return out


def is_identity(net: Any) -> bool:
    """True while the body's last layer (no bias) is zero and there is no guided branch (untrained, or a model that
    kept its untrained start): net(dC) = dC + 0 value for value, so the convolutions need not run."""
    if getattr(net, "branch", None) is not None:
        return False
    return is_zero_layer(net.body[-1])


def _series_pass(net: Any, coarse: Any, k: int, fine_k: Any) -> Any:
    """F(k) + dC_k + net(dC_k) for every date: [B, T, h, w] from coarse [B, T, h, w] and fine_k [B, h, w]. On the
    CPU in channels-last layout, which oneDNN convolves 2.3 times as fast for these grouped 3D convolutions
    (measured: 0.24 s vs 0.56 s for 17 x 256 x 256 x 6 on two cores). A network that is the identity
    (:func:`is_identity`) is not run: F(k) + dC_k, the same values."""
    torch = import_torch()
    if is_identity(net):
        return fine_k[:, None] + (coarse - coarse[:, k:k + 1])
    change = (coarse - coarse[:, k:k + 1])[None]
    if getattr(net, "branch", None) is not None:
        change = torch.cat([change, fine_k[None, :, None].expand_as(change)], 1)
    if change.device.type == "cpu":
        change = change.contiguous(memory_format=torch.channels_last_3d)
    return fine_k[:, None] + net(change)[0]


def blend_weights(date: _dt.date, before: _dt.date, after: _dt.date, mode: str,
                  change_before: np.ndarray | None = None, change_after: np.ndarray | None = None) -> Any:
    """Weight of the prediction from the pair ``before`` (the other gets 1 - w) for ``date`` between them:
    distance: (t_after - t) / (t_after - t_before); change: (1 / c_b) / (1 / c_b + 1 / c_a) with c the mean
    absolute coarse change (per band)."""
    if mode == "distance":
        return (after - date).days / max((after - before).days, 1)
    inverse_b = 1.0 / np.maximum(change_before, 1e-12)
    inverse_a = 1.0 / np.maximum(change_after, 1e-12)
    return inverse_b / (inverse_b + inverse_a)


def _plan(date: _dt.date, refs: tuple[_dt.date, ...], mode: str, changes: dict) -> list[tuple[_dt.date, Any]]:
    """[(reference pair, weight)] for ``date`` given its neighbouring pairs ``refs`` (one or two)."""
    if mode == "off" or len(refs) == 1:
        return [(nearest_date(date, refs), 1.0)]
    b, a = refs
    w = blend_weights(date, b, a, mode, changes.get((date, b)), changes.get((date, a)))
    return [(b, w), (a, 1.0 - w)]


def mean_abs_change(series: SceneSeries, pairs: list[tuple[_dt.date, _dt.date]], scale: float) -> dict:
    """{(t, k): per-band mean over the valid pixels of |C(t) - C(k)|} (the 'change' time weighting)."""
    result = {}
    for t, k in pairs:
        ct, ok1 = read_item(series.coarse_at(t), None, scale)
        ck, ok2 = read_item(series.coarse_at(k), None, scale)
        valid = ok1 & ok2
        result[(t, k)] = np.abs(ct - ck)[:, valid].mean(axis=1) if valid.any() else np.ones(ct.shape[0])
    return result


def predict(
    meta: dict[str, Any], weights: dict[str, Any], series: SceneSeries, dates: list[_dt.date], folder: str,
    scale: float, device: str = "auto", feedback: Feedback | None = None, time_weighting: str | None = None,
    tile_size: int | None = None,
) -> list[str]:
    """Predict all ``dates`` at once per tile (``stf3dcnn_<date>.tif``); ``tile_size`` overrides the memory
    budget's tile side."""
    torch = import_torch()
    params = Stf3dcnnParams(**{"guided": False, **meta["params"]})  # model files before the branch have none
    mode = time_weighting or params.time_weighting
    if mode not in TIME_WEIGHTS:
        raise InputError(f"Unknown time weighting '{mode}'; use one of {', '.join(TIME_WEIGHTS)}.")
    dev = resolve_device(device)
    net = build_checked(lambda: build_network(params, series.grid.bands), weights["stf3dcnn"], "STF3DCNN")
    net = net.to(dev).eval()
    if dev.type == "cpu":
        net.body = net.body.to(memory_format=torch.channels_last_3d)  # the guided branch's 2D layers stay
    all_dates = series.dates
    refs = {}
    for date in dates:
        around = series.pairs_around(date)
        refs[date] = tuple(p.date for p in around) if around else (series.nearest_pair(date).date,)
    changes = {}
    if mode == "change":
        changes = mean_abs_change(series, [(d, k) for d in dates for k in refs[d] if len(refs[d]) == 2], scale)
    plans = {date: _plan(date, refs[date], mode, changes) for date in dates}
    needed = sorted({k for plan in plans.values() for k, _ in plan})
    if feedback is not None:
        feedback.info(f"STF3DCNN: {len(dates)} date(s) in one pass per tile from the reference pair(s) "
                      f"{', '.join(k.isoformat() for k in needed)}; time weighting {mode}.")
    cache: dict[str, Any] = {}

    def predict_tile(date, tile):
        if cache.get("tile") != tile.index:
            coarse, valid, fine = _read_cube(series, tile.outer, scale)
            c = torch.from_numpy(coarse).to(dev)
            with torch.no_grad():
                outputs = {k: _series_pass(net, c, all_dates.index(k), torch.from_numpy(fine[k]).to(dev))
                           for k in needed}
            cache.update(tile=tile.index, outputs=outputs, valid=valid)
        out = _blend(plans[date], cache["outputs"], all_dates.index(date), dev)
        r, cc = tile.inner_in_outer
        return out[:, r, cc].cpu().numpy(), cache["valid"][r, cc]

    return write_predictions(series, dates, METHOD, folder, predict_tile, scale, halo=params.spatial_radius,
                             bytes_per_pixel=4 * len(all_dates) * (params.width * 2 + 8) / 6, tile_size=tile_size,
                             feedback=feedback, value_range=series_value_range(series, scale))
