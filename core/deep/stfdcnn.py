"""STFDCNN (Song, Liu, Wang, Hang & Huang 2018, IEEE JSTARS 11(3)): two five-layer residual CNNs and a fusion
model of high-pass modulation and change-based weighting.

Training (per pair date used for training, fine F and coarse C on the fine grid):

* LSR fine  F^l = down(F), LSR coarse  M^l = down(C): bicubic downsampling by ``factor`` (paper: 10);
* NLM CNN, one per band:  M^l -> F^l, learning the residual R = F^l - M^l                     (eqs. 1-4)
* SR CNN, shared by all bands:  up(F^l) -> F, learning the residual R^s = F - up(F^l)             (eq. 5)
  (as in SRCNN, the low-resolution input is first brought to the output grid by bicubic interpolation);
* each CNN: conv k1 x k1, n1 filters, ReLU; conv k2 x k2, n2, ReLU; conv k3 x k3, 1 (n1 = 64, n2 = 32, k1 = 9,
  k2 = k3 = 5); MSE loss on 33 x 33 sub-images (at the LSR level at most half the LSR image, so that a small
  scene still gives many sub-images; stride ``lsr_stride`` there, ``stride`` at the fine level, at most
  ``max_subimages`` for the SR CNN and a quarter of it for each NLM CNN, drawn with the seed: memory and epoch
  time do not grow with the scene or the pairs);
* training pairs: the paper trains on 3 of the 17 CIA pairs spread over the series (the 1st, 6th and 14th); by
  default at most ``max_pairs`` = 3 pairs evenly spread over the series' pairs.

Choices of ours (issue 11), where the paper is silent or its setting does not converge on a CPU budget:

* the last layer of each CNN starts at zero, so the untrained CNNs are the identity (NLM(M^l) = M^l, SR(x) = x:
  bicubic) and the untrained model IS the fusion model on the bicubic images; PyTorch's default initialisation put
  a random 0.002-0.05 offset on the residual that the paper's SGD rates never removed;
* validation on the task (:mod:`.validation`): every pair date is predicted, as if unknown, from the other pairs
  in a held-out block that no training sub-image touches. Each NLM CNN keeps the epoch whose LSR-level fusion
  (eqs. 6-9 on its band) is best on the held-out dates; the SR CNN then keeps the epoch whose full prediction (both
  levels) is best. Epoch 0 (untrained) is a candidate, training stops after ``patience`` epochs without
  improvement. The trained networks then replace the fusion model only when their full prediction beats it on the
  held-out dates by more than the score's noise (:func:`.validation.significant`) and by at least ``min_gain``
  (5 %, as the refinement's). Measured with the defaults (192-pixel series, 3 pairs: one held-out date,
  2026-12-04): the held-out gains of 0.1-0.8 % on six realistic seeds (101-606) came with -0.9 to +0.4 % over the
  predicted dates, and 2.0 / 3.6 % on two control seeds with -0.4 / -0.3 %: one held-out date, 144 days from
  the training pairs, does not show how the networks fare on the dates between pairs, and a small gain there
  carried no information (``bench/ceiling.py``: little of the fusion model's error is learnable from other dates
  on those scenes). ``min_gain`` = 0 gives the networks whenever they beat the noise;
* optimiser: Adam at the paper's per-layer rates x 10 (1e-3, last layer 1e-4) by default; SGD with the paper's
  rates (1e-4 / 1e-5, momentum 0.9 as in SRCNN) stays an option for long GPU runs (it needs thousands of epochs);
* at most 5 epochs per network by default. The NLM CNNs learn a sharper coarse -> LSR mapping; the prediction is
  about F1 NLM(M2) / NLM(M1), and the networks' errors differ from date to date, so the sharpening that helps the
  held-out dates (a pair spacing away) and large changes (floods) adds noise to dates close to a pair, where the
  true ratio is near 1. Measured (mean per-band RMSE over the predicted dates vs the untrained model): 20 epochs
  -2.2 % on the bundled sample but +0.9 % on a 240-pixel series with 5 pairs; 5 epochs -0.9 % on both.

Prediction of t2 from the pairs t1 (and t3):

* transitional LSR images T_i^l = NLM(M_i^l), i = 1, 2, 3;
* high-pass modulation L_21^l = L_1^l T_2^l / T_1^l and L_23^l = L_3^l T_2^l / T_3^l                 (eqs. 6-7)
  Guard (ours): the ratio T_2 / T_1 is used only where T_1 >= 0.01 reflectance (a dark or negative transitional
  pixel makes it unstable or flips its sign) and the ratio lies within [1 / ``hpm_max``, ``hpm_max``]; elsewhere
  the modulation is additive, L_1 + T_2 - T_1;
* weights w_i = (1 / |T_2 - T_i|) / sum_j (1 / |T_2 - T_j|) with the absolute changes summed over ``window`` x
  ``window`` patches centred on each pixel (overlapping patches; paper: 9 x 9)                         (eqs. 8-9);
* the same fusion at the fine level with T_i = SR(up(L_i^l)), i = 1, 3, and T_2 = SR(up(L^_2^l)), fine L_1, L_3.

One-pair mode (a single pair, or a date outside the pairs) keeps only the t1 end. The fine level runs tile by tile
with a halo of the SR CNN's receptive field plus the weighting window, so results do not depend on the tiling.
Predictions are clamped into the series' value range.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import describe_device, import_torch, resolve_device
from ..errors import InputError
from ..feedback import Feedback, SubFeedback, check_cancel
from ..fusion import series_value_range, write_predictions
from ..series import SceneSeries, check_encodings
from .common import (TileCache, box_sum, downsample, patch_positions, read_image, read_window, upsample,
                     upsample_window, valid_lsr)
from .modelfile import build_checked, training_metadata
from .training import Adam, TensorBatches, is_zero_layer, seed_everything, train, zero_last_layer
from .validation import BlockData, HoldOut, baseline_scores, meets_min_gain, plan_holdout, read_block_data, rmse, \
    score, Score, quadrant_rmses, significant, validation_record

METHOD = "stfdcnn"
HPM_MIN = 0.01


@dataclass
class StfdcnnParams:
    """Training settings (defaults: the paper's where it gives them, see the module docstring)."""

    factor: int = 10
    patch: int = 33
    stride: int = 14
    lsr_stride: int = 1
    max_subimages: int = 4096
    max_pairs: int = 3
    epochs: int = 5
    patience: int = 3
    batch: int = 64
    lr: float = 1e-4
    lr_last: float = 1e-5
    optimizer: str = "adam"
    momentum: float = 0.9
    n1: int = 64
    n2: int = 32
    k1: int = 9
    k2: int = 5
    k3: int = 5
    window: int = 9
    hpm_max: float = 3.0
    validation: float = 0.25
    min_gain: float = 0.05  # held-out share the trained networks must gain to replace the fusion model
    seed: int = 0

    def validate(self) -> None:
        if self.factor < 2:
            raise InputError(f"The LSR downsampling factor must be at least 2 (got {self.factor}).")
        if self.optimizer not in ("sgd", "adam"):
            raise InputError(f"Unknown optimiser '{self.optimizer}'; use sgd or adam.")
        if self.epochs < 0 or self.batch < 1 or self.patch < 3 or self.max_subimages < 1 or self.max_pairs < 1:
            raise InputError("Epochs must be at least 0, the batch size, sub-images and pairs at least 1 and the "
                             "patch size at least 3.")
        if self.hpm_max <= 1:
            raise InputError(f"The high-pass modulation bound must be above 1 (got {self.hpm_max}).")
        if not 0 <= self.validation < 1:
            raise InputError(f"The validation share must be in [0, 1) (got {self.validation}).")
        if not 0 <= self.min_gain < 1:
            raise InputError(f"The minimum held-out gain must be in [0, 1) (got {self.min_gain}).")

    @property
    def receptive_radius(self) -> int:
        return self.k1 // 2 + self.k2 // 2 + self.k3 // 2

    @property
    def halo(self) -> int:
        return self.receptive_radius + self.window // 2


def build_network(p: StfdcnnParams) -> Any:
    """One residual CNN (NLM or SR): x + conv3(relu(conv2(relu(conv1(x))))), single channel in and out; conv3
    starts at zero (the untrained network is the identity)."""
    torch = import_torch()
    nn = torch.nn

    class ResidualCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, p.n1, p.k1, padding=p.k1 // 2)
            self.conv2 = nn.Conv2d(p.n1, p.n2, p.k2, padding=p.k2 // 2)
            self.conv3 = nn.Conv2d(p.n2, 1, p.k3, padding=p.k3 // 2)
            zero_last_layer(self.conv3)

        def forward(self, x):
            return x + self.conv3(torch.relu_(self.conv2(torch.relu_(self.conv1(x)))))

    return ResidualCNN()


def _optimizer(net: Any, p: StfdcnnParams) -> Any:
    torch = import_torch()
    groups = [{"params": list(net.conv1.parameters()) + list(net.conv2.parameters()), "lr": p.lr},
              {"params": list(net.conv3.parameters()), "lr": p.lr_last}]
    if p.optimizer == "adam":
        for g in groups:
            g["lr"] *= 10
        return Adam(groups)  # torch.optim.Adam's arithmetic without its import of the compiler (training.Adam)
    return torch.optim.SGD(groups, momentum=p.momentum)


def spread_pairs(pair_dates: list[_dt.date], count: int) -> list[_dt.date]:
    """At most ``count`` pair dates evenly spread over the series (first and last included)."""
    if len(pair_dates) <= count:
        return list(pair_dates)
    index = sorted({round(i * (len(pair_dates) - 1) / (count - 1)) for i in range(count)}) if count > 1 else [0]
    return [pair_dates[i] for i in index]


def choose_pairs(pair_dates: list[_dt.date], count: int, max_held: int = 3) -> tuple[list, list]:
    """(training pairs, held-out validation pairs) by default: with three pairs or more, at most ``count``
    training pairs spread over the series leaving at least one pair out, and as validation targets the interior
    pairs not trained on (at most ``max_held``, those nearest the middle of their gap first); with fewer pairs,
    every pair trains and nothing is held out."""
    pairs = sorted(pair_dates)
    if len(pairs) < 3:
        return pairs, []
    train_pairs = spread_pairs(pairs, min(count, len(pairs) - 1))
    if len(train_pairs) == 1:
        train_pairs = [pairs[0], pairs[-1]]
    held = [d for d in pairs[1:-1] if d not in train_pairs]
    if not held:  # every interior pair trains: hold the middle one out
        middle = pairs[len(pairs) // 2]
        train_pairs = [d for d in train_pairs if d != middle]
        held = [middle]
    held.sort(key=lambda d: min(abs((d - t).days) for t in train_pairs), reverse=True)
    return train_pairs, sorted(held[:max_held])


def _subimages(images: list[tuple[Any, Any, np.ndarray]], size: int, stride: int, excluded: np.ndarray | None,
               limit: int, rng: np.random.Generator) -> tuple[Any, Any]:
    """At most ``limit`` (input, target) sub-images [N, 1, size, size] from [(input [C, H, W], target [C, H, W],
    validity [H, W])], every channel a sample; chosen at random (``rng``) among the valid windows."""
    torch = import_torch()
    candidates = []
    for i, (inp, _, ok) in enumerate(images):
        for y, x in patch_positions(ok, size, stride, excluded):
            candidates += [(i, c, y, x) for c in range(inp.shape[0])]
    if not candidates:
        raise InputError(f"No training sub-image of {size} x {size} pixels without nodata outside the validation "
                         "block; choose a smaller sub-image size (PATCH).")
    if len(candidates) > limit:
        candidates = [candidates[j] for j in sorted(rng.choice(len(candidates), limit, replace=False))]
    xs = torch.stack([images[i][0][c:c + 1, y:y + size, x:x + size] for i, c, y, x in candidates])
    ys = torch.stack([images[i][1][c:c + 1, y:y + size, x:x + size] for i, c, y, x in candidates])
    return xs, ys


def hpm(reference: Any, t_target: Any, t_reference: Any, bound: float = 3.0) -> Any:
    """High-pass modulation L_ref * T_target / T_ref (eqs. 6-7), additive (L_ref + T_target - T_ref) where
    T_ref < HPM_MIN or the ratio is outside [1 / bound, bound]."""
    torch = import_torch()
    ratio = t_target / torch.where(t_reference >= HPM_MIN, t_reference, torch.ones_like(t_reference))
    safe = (t_reference >= HPM_MIN) & (ratio <= bound) & (ratio >= 1.0 / bound)
    return torch.where(safe, reference * ratio, reference + t_target - t_reference)


def change_weights(t2: Any, t1: Any, t3: Any, window: int) -> tuple[Any, Any]:
    """(w1, w3) of eq. 8 with the absolute changes summed over ``window`` x ``window`` patches."""
    a = box_sum((t2 - t1).abs(), window).clamp_min(1e-12)
    b = box_sum((t2 - t3).abs(), window).clamp_min(1e-12)
    w1 = (1.0 / a) / (1.0 / a + 1.0 / b)
    return w1, 1.0 - w1


def fuse(l1: Any, l3: Any | None, t1: Any, t2: Any, t3: Any | None, window: int, bound: float = 3.0) -> Any:
    """Eqs. 6-9 on [B, 1, H, W] tensors; one-pair mode when ``l3`` is None."""
    from_1 = hpm(l1, t2, t1, bound)
    if l3 is None:
        return from_1
    from_3 = hpm(l3, t2, t3, bound)
    w1, w3 = change_weights(t2, t1, t3, window)
    return w1 * from_1 + w3 * from_3


def is_identity(net: Any) -> bool:
    """True while the residual CNN's last layer is zero (untrained, or kept untrained): x + conv3(...) is then x,
    value for value, and its convolutions need not run (the untrained model's validation and prediction). Any
    other callable (STFSR passes its own functions through the same fusion) is not skipped."""
    last = getattr(net, "conv3", None)
    return last is not None and is_zero_layer(last)


def _apply_nlm(nlm: list, low: Any) -> Any:
    """T^l = NLM_b(M^l) band by band, [B, 1, h, w]."""
    torch = import_torch()
    return torch.stack([low[b] if is_identity(nlm[b]) else nlm[b](low[b:b + 1])[0] for b in range(low.shape[0])])


def _lsr_fusion(nlm: list, fine_low: dict, coarse_low: dict, target: _dt.date, refs: tuple, p: StfdcnnParams) -> Any:
    """The LSR-level prediction of ``target`` from ``refs`` (one or two pair dates), [B, 1, h, w]."""
    t = {d: _apply_nlm(nlm, coarse_low[d]) for d in (target,) + tuple(refs)}
    two = len(refs) == 2
    return fuse(fine_low[refs[0]], fine_low[refs[1]] if two else None, t[refs[0]], t[target],
                t[refs[1]] if two else None, p.window, p.hpm_max)


def _fine_fusion(sr: Any, fused_low: Any, ends: list[tuple[Any, Any]], window: Any, p: StfdcnnParams,
                 shared: dict | None = None) -> Any:
    """The fine-level prediction over ``window`` (fine-grid window of the scene) from the LSR prediction
    ``fused_low`` (whole scene) and the pair ends [(fine L_i over the window [B, 1, h, w], LSR fine L_i^l whole
    scene)], [B, 1, h, w]. ``shared`` (kept by the caller for one window) holds the SR image of each pair end's
    L_i^l: every date of the window between the same pairs uses it, so it is computed once."""
    t2 = _super_resolve(sr, upsample_window(fused_low, p.factor, window))
    ts = []
    for _, low in ends:
        key = id(low)  # the LSR images live as long as the prediction run
        if shared is None or key not in shared:
            result = _super_resolve(sr, upsample_window(low, p.factor, window))
            if shared is None:
                ts.append(result)
                continue
            shared[key] = result
        ts.append(shared[key])
    two = len(ends) == 2
    return fuse(ends[0][0], ends[1][0] if two else None, ts[0], t2, ts[1] if two else None, p.window, p.hpm_max)


def _super_resolve(sr: Any, image: Any) -> Any:
    """``sr(image)`` band by band (the 64 + 32 feature maps of one band at a time: larger tiles in the same memory,
    so less halo is computed twice); on the CPU in channels-last layout, which oneDNN convolves about twice as fast
    (measured: 0.43 s vs 0.81 s for 6 x 512 x 512 on two cores)."""
    torch = import_torch()
    if is_identity(sr):
        return image.contiguous()
    if image.device.type == "cpu":
        image = image.contiguous(memory_format=torch.channels_last)
    return torch.cat([sr(image[b:b + 1]) for b in range(image.shape[0])])


class _Validation:
    """The held-out task of STFDCNN at both levels (module docstring)."""

    def __init__(self, series: SceneSeries, holdout: HoldOut, p: StfdcnnParams, scale: float, dev: Any,
                 value_range: tuple[float, float]) -> None:
        torch = import_torch()
        self.holdout, self.p, self.dev, self.value_range = holdout, p, dev, value_range
        self.data: BlockData = read_block_data(series, holdout, p.halo, scale)
        self.fine_low, self.coarse_low, valid = {}, {}, None
        for item in series.fine:
            fine, ok1 = read_image(item, scale)
            coarse, ok2 = read_image(series.coarse_at(item.date), scale)
            self.fine_low[item.date] = downsample(torch.from_numpy(fine)[:, None], p.factor).to(dev)
            self.coarse_low[item.date] = downsample(torch.from_numpy(coarse)[:, None], p.factor).to(dev)
            ok = valid_lsr(ok1 & ok2, p.factor)
            valid = ok if valid is None else valid & ok
        b, f = holdout.block, p.factor
        # the LSR pixels entirely inside the block
        self.low_slices = (slice(-(-b.y // f), (b.y + b.height) // f), slice(-(-b.x // f), (b.x + b.width) // f))
        self.low_valid = valid[self.low_slices]

    def lsr_score(self, nlm: list, band: int) -> float:
        """Mean over the held-out dates of the LSR-level RMSE of ``band`` in the block, with the RMSE of each
        (date, quadrant) as its parts (:class:`.validation.Score`)."""
        values, parts = [], []
        for target, refs in self.holdout.targets:
            pred = _lsr_fusion(nlm, self.fine_low, self.coarse_low, target, refs, self.p)[band, 0]
            truth = self.fine_low[target][band, 0]
            sl = self.low_slices
            p = pred[sl].clamp(*self.value_range).cpu().numpy()[None]
            t = truth[sl].cpu().numpy()[None]
            values.append(rmse(p, t, self.low_valid))
            parts += quadrant_rmses(p, t, self.low_valid)
        return Score(float(np.nanmean(values)), parts) if values else float("nan")

    def full_score(self, nlm: list, sr: Any) -> float:
        """Mean over the held-out dates of the fine-level RMSE in the block."""
        torch = import_torch()
        data, predictions = self.data, {}
        for target, refs in self.holdout.targets:
            fused_low = _lsr_fusion(nlm, self.fine_low, self.coarse_low, target, refs, self.p)
            ends = [(torch.from_numpy(data.fine[r])[:, None].to(self.dev), self.fine_low[r]) for r in refs]
            out = _fine_fusion(sr, fused_low, ends, data.window, self.p)[:, 0]
            predictions[target] = out.clamp(*self.value_range)[(slice(None),) + data.inner].cpu().numpy()
        return score(predictions, data)


def _recording(validate: Any, scores: list) -> Any:
    """``validate`` that also appends each score it returns to ``scores`` (one per epoch, epoch 0 first)."""
    def recorded():
        scores.append(validate())
        return scores[-1]

    return recorded


def train_stfdcnn(
    series: SceneSeries, pair_dates: list[_dt.date] | None, scale: float, params: StfdcnnParams,
    device: str = "auto", feedback: Feedback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the NLM CNNs (one per band) and the SR CNN; returns (state dicts, metadata)."""
    torch = import_torch()
    params.validate()
    check_encodings(series, scale)
    dev = resolve_device(device)
    seed_everything(params.seed)
    rng = np.random.default_rng(params.seed)
    if pair_dates:
        chosen, held = sorted(pair_dates), [d for d in series.pair_dates[1:-1] if d not in pair_dates]
    else:
        chosen, held = choose_pairs(series.pair_dates, params.max_pairs)
    pairs = [series.fine_at(d) for d in chosen]
    grid = series.grid
    f = params.factor
    holdout = plan_holdout(grid.height, grid.width, series.pair_dates, params.validation, held_dates=held)
    if feedback is not None:
        feedback.info(f"STFDCNN training on {describe_device(dev)} with the pairs "
                      + ", ".join(p.date.isoformat() for p in pairs))
    low_images, fine_images = [], []
    for pair in pairs:
        fine, v1 = read_image(pair, scale)
        coarse, v2 = read_image(series.coarse_at(pair.date), scale)
        valid = v1 & v2
        fine_t = torch.from_numpy(fine)[:, None]  # [B, 1, H, W]
        fine_l = downsample(fine_t, f)
        low_images.append((downsample(torch.from_numpy(coarse)[:, None], f)[:, 0], fine_l[:, 0], valid_lsr(valid, f)))
        fine_images.append((upsample(fine_l, f, grid.height, grid.width)[:, 0], fine_t[:, 0], valid))
    hl, wl = low_images[0][2].shape
    excluded_fine = excluded_low = None
    if holdout is not None and holdout.spatial:
        b = holdout.block
        excluded_fine = np.zeros((grid.height, grid.width), bool)
        excluded_fine[b.y:b.y + b.height, b.x:b.x + b.width] = True
        excluded_low = np.zeros((hl, wl), bool)
        excluded_low[b.y // f:-(-(b.y + b.height) // f), b.x // f:-(-(b.x + b.width) // f)] = True
    lsr_patch = min(params.patch, max(3, min(hl, wl) // 2))
    if lsr_patch < params.patch and feedback is not None:
        feedback.info(f"The LSR images ({wl} x {hl}) are small: NLM sub-images of {lsr_patch} pixels.")
    value_range = series_value_range(series, scale)
    validation = _Validation(series, holdout, params, scale, dev, value_range) if holdout is not None else None
    scores = baseline_scores(validation.data, holdout, value_range) if validation is not None else {}
    if validation is not None and feedback is not None:
        feedback.info(f"STFDCNN {holdout.describe()}.")
    bands = grid.bands
    nlm = [build_network(params).to(dev) for _ in range(bands)]
    sr = build_network(params).to(dev)
    networks, histories = {}, {}
    sr_scores: list = []  # the SR's validation per epoch: the full prediction with the final NLM CNNs
    steps = bands + 1
    for b in range(bands + 1):
        sub = SubFeedback(feedback, 100.0 * b / steps, 100.0 * (b + 1) / steps) if feedback else None
        check_cancel(sub)
        if b < bands:
            name, net = f"nlm_{b}", nlm[b]
            # the LSR images hold 1 / factor^2 of the pixels: a quarter of the cap covers them many times over
            x, y = _subimages([(i[b:b + 1], o[b:b + 1], ok) for i, o, ok in low_images], lsr_patch,
                              params.lsr_stride, excluded_low, max(1, params.max_subimages // 4), rng)
            validate = (lambda b=b: validation.lsr_score(nlm, b)) if validation is not None else None
        else:
            name, net = "sr", sr
            x, y = _subimages(fine_images, params.patch, params.stride, excluded_fine, params.max_subimages, rng)
            validate = _recording(lambda: validation.full_score(nlm, sr), sr_scores) \
                if validation is not None else None
        if dev.type == "cpu":  # channels-last for oneDNN (1.2x, 1.5x under bf16); back to contiguous after
            net.to(memory_format=torch.channels_last)
        history = train(net, _optimizer(net, params), TensorBatches(x, y, params.batch, params.seed + b),
                        params.epochs, torch.nn.functional.mse_loss, validate, params.patience, dev, sub,
                        label=f"{name} ({len(x)} sub-images): ", bf16=True)
        net.to(memory_format=torch.contiguous_format)
        networks[name] = net.state_dict()
        histories[name] = history.as_dict()
    # the model's held-out record: the full prediction with every network as kept, and untrained
    record = {}
    if validation is not None:
        with torch.no_grad():
            # the kept SR epoch's score is this very prediction (every NLM CNN was final when the SR trained)
            final = sr_scores[histories["sr"]["best_epoch"]]
            untrained = validation.full_score([build_network(params).to(dev) for _ in range(bands)],
                                              build_network(params).to(dev))
        improved = significant(final, untrained) and meets_min_gain(final, untrained, params.min_gain)
        record = validation_record(holdout, [untrained, final], 1 if improved else 0, scores)
        if not improved:  # the networks did not pay on the held-out task: keep the untrained model
            networks = {name: build_network(params).state_dict() for name in networks}
        if feedback is not None:
            feedback.info(f"STFDCNN held-out RMSE {record['rmse']:.5f} (untrained {untrained:.5f}, additive "
                          f"{scores['additive']:.5f}, naive {scores['naive']:.5f}).")
            if not improved and final < untrained:
                feedback.info(f"STFDCNN keeps its fusion model: the trained networks gained "
                              f"{100 * (1 - final / untrained):.1f} % on the held-out dates, less than MIN_GAIN "
                              f"({100 * params.min_gain:.0f} %) or within the score's noise.")
    else:
        record = validation_record(None, [], 0, {})
    metadata = training_metadata(grid, scale, params, params.halo, [p.date for p in pairs], histories, dev,
                                 validation=record)
    return networks, metadata


def fusion_model(bands: int, params: StfdcnnParams | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """STFDCNN's fusion model alone, for ``bands`` bands: the untrained networks (identities, :func:`is_identity`,
    so none of them runs) and the metadata :func:`predict` needs; the refinement's base ``stfdcnn``."""
    from dataclasses import asdict

    p = params or StfdcnnParams()
    untrained = build_network(p).state_dict()
    return {**{f"nlm_{b}": untrained for b in range(bands)}, "sr": untrained}, {"params": asdict(p), "halo": p.halo}


def _load_networks(weights: dict[str, Any], params: StfdcnnParams, bands: int, dev: Any) -> tuple[list, Any]:
    nlm = []
    for b in range(bands):
        net = build_checked(lambda: build_network(params), weights[f"nlm_{b}"], f"NLM (band {b + 1})")
        nlm.append(net.to(dev).eval())
    sr = build_checked(lambda: build_network(params), weights["sr"], "SR")
    sr = sr.to(dev).eval()
    if dev.type == "cpu":
        sr = sr.to(memory_format=import_torch().channels_last)
    return nlm, sr


def predict(
    meta: dict[str, Any], weights: dict[str, Any], series: SceneSeries, dates: list[_dt.date], folder: str,
    scale: float, device: str = "auto", feedback: Feedback | None = None, tile_size: int | None = None,
) -> list[str]:
    """Predict every date (``stfdcnn_<date>.tif``) with a trained model; ``tile_size`` overrides the memory
    budget's tile side."""
    torch = import_torch()
    params = StfdcnnParams(**meta["params"])
    dev = resolve_device(device)
    grid = series.grid
    bands, f = grid.bands, params.factor
    nlm, sr = _load_networks(weights, params, bands, dev)
    if feedback is not None:
        feedback.info(f"STFDCNN prediction on {describe_device(dev)}.")
    fine_low, coarse_low = {}, {}

    def low(item, store):
        if item.date not in store:
            data, _ = read_image(item, scale)
            store[item.date] = downsample(torch.from_numpy(data)[:, None].to(dev), f)  # [B, 1, h, w]
        return store[item.date]

    plans = {}
    with torch.no_grad():
        for date in dates:
            around = series.pairs_around(date)
            ends = list(around) if around else [series.nearest_pair(date)]
            for e in ends:
                low(e, fine_low)
                low(series.coarse_at(e.date), coarse_low)
            low(series.coarse_at(date), coarse_low)
            # LSR level, whole scene (small: 1 / factor^2 of the fine grid)
            fused_low = _lsr_fusion(nlm, fine_low, coarse_low, date, tuple(e.date for e in ends), params)
            plans[date] = (ends, fused_low)
            if feedback is not None:
                feedback.info(f"STFDCNN {date.isoformat()}: pair(s) " + ", ".join(e.date.isoformat() for e in ends))

    cache = TileCache()  # SR images of the pair ends for the tile in progress (its dates share them)

    def predict_tile(date, tile):
        ends, fused_low = plans[date]
        shared = cache.for_tile(tile.index)
        _, valid = read_window(series.coarse_at(date), tile, scale)
        parts = []
        for e in ends:
            data, ok = read_window(e, tile, scale)
            valid = valid & ok
            parts.append((torch.from_numpy(data)[:, None].to(dev), fine_low[e.date]))
        with torch.no_grad():
            out = _fine_fusion(sr, fused_low, parts, tile.outer, params, shared)
        r, c = tile.inner_in_outer
        return out[:, 0, r, c].cpu().numpy(), valid[r, c]

    return write_predictions(series, dates, METHOD, folder, predict_tile, scale, halo=int(meta["halo"]),
                             bytes_per_pixel=4 * ((params.n1 + params.n2) / bands + 24), tile_size=tile_size,
                             feedback=feedback, value_range=series_value_range(series, scale))
