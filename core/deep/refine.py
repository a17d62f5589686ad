"""stf:train_refine: a residual network on top of a base fusion method. This product's own method (not from a
paper; issue "The best prediction without expertise", item 2).

Base method m (a classic method or the additive baseline, with its default settings) predicts a date t from the
pairs: P(t). The refinement adds what the network infers from the base prediction, the nearest pair's fine image
F(t_r) and the coarse change since that pair, every band together:

    x(t) = [ P(t), F(t_r), C(t) - C(t_r) ]                                 (3 B channels, reflectance)
    F^(t) = P(t) + g(x(t))                                                (B channels)
    g = conv_1x1( relu( conv_3x3,d_K( ... relu( conv_3x3,d_1( relu( conv_3x3(x) ) ) ) ) ) )

with dilations d_1..d_K (default 1, 2, 4, 8, 16: a field of view of 1 + sum d = 32 fine pixels either side, two
or more coarse pixels of a Landsat-MODIS series on its fine grid) and ``width`` feature maps. The last layer starts
at zero, so the untrained model IS the base method: g = 0.

Base ``stfdcnn``: STFDCNN's fusion model without its CNNs (the untrained STFDCNN: high-pass modulation at the LSR
and fine levels, from the pairs around the date or the nearest one), each example predicted from every other pair.
Base ``auto`` (default): ESTARFM with four pairs or more (ESTARFM needs two interior pairs for the examples below),
else FSDAF. Measured, mean RMSE over the non-pair dates of 192-pixel series (the base methods alone): with 3 pairs
STFDCNN's fusion model was the best of FSDAF, ESTARFM and it on control seeds 42 / 303 / 505
(0.01438 / 0.01452 / 0.01567 against FSDAF's 0.01698 / 0.01658 / 0.01821) and realistic seeds 303 / 404 / 505 /
606 (0.02216 / 0.02537 / 0.02332 / 0.02387 against FSDAF's 0.02407 / 0.02592 / 0.02417 / 0.02479), and second to
ESTARFM on realistic seed 101 (0.02376 against 0.02332; FSDAF 0.02556); with 5 pairs (CIA-like, 17 dates) ESTARFM
was better on realistic seeds 101 / 202 (0.01690 / 0.01666 against 0.01794 / 0.01813), STFDCNN's on control seed
101 (0.00803 against 0.00907). It is not ``auto``'s choice for fewer pairs all the same: on the bundled sample's
last date, 16 days before a pair, it was worse than the naive prediction (0.0098 against 0.0063; FSDAF 0.0044):
its two-pair weighting gives the far pair weight, and a base the network cannot improve (it kept every start above)
passes that on. Refined, it kept its start on the sample and realistic seeds 101 and 606.

Base ``blend``: stf:fuse_auto's default prediction (:mod:`..auto`: the trimmed mean of its members within 3x of the
best cross-validated RMSE), each example predicted by the blend of every other pair (cross-validated on those
pairs only, so three pairs are needed). Measured with the defaults otherwise, when fuse_auto's default was still
the plain mean of the five classic members (192 pixels, 3 pairs, mean RMSE over the 7 non-pair dates; the trimmed
mean with STFDCNN's fusion model among the members now gives 0.01441 and 0.02276 unrefined, not refined since):
the bundled sample (control) blend 0.01537, refined 0.01537 (kept its start; FSDAF refined,
the ``auto`` base here: about 0.0157), realistic seed 101 blend 0.02352, refined 0.02352 (ESTARFM 0.02332, FSDAF
0.02556); training 25-27 s on 2 CPU cores (the blend runs its cross-validation for each example). Not ``auto``'s
choice: the refinement learns nothing on top of it there, and ``auto`` is the base it can improve.

Examples (the scene's own pairs, leave-one-pair-out): pair dates t_k predicted by the base method without their
own fine image, P_k, and g learns F(t_k) - P_k, the base method's real error on a date it did not see, by MSE on
random ``crop`` x ``crop`` windows (at most ``max_crops``, drawn once; training forward passes in bfloat16 where
the CPU has it, :func:`.training.bf16_training`). A two-pair base (ESTARFM) predicts each interior target from
every other pair; a one-pair base (FSDAF, Fit-FC, STARFM, additive) each target from its nearest other pair, and
with ``max_examples`` above the number of targets also from the next nearest pairs alone, taken in turn over the
targets (the DCNN's "every ordered pair of pairs": more gaps and both directions). That option is off by default:
measured (FSDAF base, 3 pairs, 192 px, mean RMSE over the 7 predicted dates against the base) every pair gave
+3.4 % on realistic seed 101 and +4.7 % on the control sample, but -13 % on realistic seed 606 (its held-out date
13.7 % better, the dates after it worse) and, without the input range and the two held-out dates (below), -13 % on
a CIA-like series (5 pairs); the nearest pair alone kept its start on realistic seeds 42, 101, 303, 404, 505, 606
and control seeds 303, 505, and gained 7.7 % on the bundled sample (control, seed 42).

Input range (ours): each input channel is clamped into the 0.1-99.9 percentiles of the training windows' values
(kept in the model), so g does not extrapolate a change larger than any example shows (a flood that no pair
shows made those dates 45 % worse while the others improved).

Selection (issue "Learning that pays", item 2): example dates are held out in time (every other interior one, at
most 3; with two example dates the later one): their fine images are training targets nowhere, and the refined
predictions of those dates (from the base method's prediction without their pair) are scored over the centre of
the scene (at most 384 pixels a side; ``protocol: temporal``). Epoch 0 (the base method) is a candidate, and a
later epoch replaces it only when it beats it by more than the score's noise (:func:`.validation.significant`)
and by at least ``min_gain`` (5 %: one held-out date cannot show how the correction fares on others, e.g. seed 303
above: 3 % better on the held-out date, 2 % worse over the predicted dates); training stops after ``patience``
epochs without improvement. So at least two example dates are needed (two pairs, four with ESTARFM). A spatial
block of a single example's date is NOT used: measured on the realistic sample (seed 101, ESTARFM, 3 pairs), the
epoch kept there was 11 % better on the block and 5.7 % WORSE over the 7 predicted dates (the network learned that
date's error, which other dates do not share). A held-out date's fine image may be an INPUT of the other examples'
base predictions (as in stf:cross_validate), never a target.

Error estimate (issue item 3; :mod:`..uncertainty`, shared with stf:fuse_auto): beside each prediction,
uncertainty/refine_<date>_error.tif, e^ = sqrt((e0 + a r + g c)^2 + max(n^2 - n0^2, 0)) with r = sqrt(mean_b g_b^2)
the correction's size, c the coarse change's size since the reference pair and n the change's novelty; e0, a, g
fitted on the held-out dates with the kept network and scaled so the estimated and held-out errors agree in mean
(kept in the model file, ``error_model``). Measured, mean estimate / mean true error over the predicted dates: the
bundled sample 1.04, control seed 303 1.00, realistic seeds 101 / 606 1.28 / 1.21, realistic CIA-like seed 101
1.28 (the held-out dates are a pair spacing from their reference, most predicted dates closer: overestimated).
Where a fallback filled a gap the estimate is empty.

Measured (README, "Refinement"): with the defaults it keeps its start (the base method) on every realistic series
tried and gains on the bundled control sample; on the realistic simulator the base methods' errors of different
dates are nearly uncorrelated, so what one pair date teaches rarely holds on another.
"""
from __future__ import annotations

import datetime as _dt
import os
import tempfile
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..device import describe_device, import_torch, resolve_device
from ..errors import InputError
from ..feedback import Feedback, SubFeedback, check_cancel
from ..fusion import FUSION_MODEL, fuse_member, series_value_range, write_predictions
from ..naive import additive
from ..raster import raster_info, scratch_dir
from ..series import DatedRaster, SceneSeries, as_scales, check_encodings, read_item, require_fine_grid
from ..tiles import Window
from ..uncertainty import ERROR, band_rms, estimate, fit_error_model, novelty_fit
from ..uncertainty import novelty as novelty_map
from .common import patch_positions
from .modelfile import build_checked, training_metadata
from .training import Adam, TensorBatches, is_zero_layer, seed_everything, train, zero_last_layer
from .validation import HoldOut, Score, quadrant_rmses, rmse, validation_record

METHOD = "refine"
BASES = ("auto", "additive", "starfm", "estarfm", "fsdaf", "fitfc", "stfdcnn", "blend")
TWO_SIDED = ("estarfm",)  # bases that predict a date only between a pair before and one after it
# bases that take the pairs around a date (or the nearest one) themselves: each example from every other pair
ANY_PAIRS = ("stfdcnn", "blend")
VALIDATION_SIDE = 384  # the temporal hold-out is scored on the centre of the scene, at most this many pixels a side
ERROR_PIXELS = 200_000  # at most this many held-out pixels fit the error estimate


@dataclass
class RefineParams:
    """Training settings (module docstring). Defaults measured to end in about a minute on the bundled sample on
    2 CPU cores (early stopping usually ends sooner)."""

    base: str = "auto"
    epochs: int = 30
    patience: int = 5
    width: int = 24
    dilations: str = "1,2,4,8,16"
    crop: int = 96
    max_crops: int = 256
    max_examples: int = 1
    min_gain: float = 0.05
    batch: int = 8
    lr: float = 1e-3
    seed: int = 0

    def validate(self) -> None:
        if self.base not in BASES:
            raise InputError(f"Unknown base method '{self.base}'; choose among {', '.join(BASES)}.")
        if (self.epochs < 0 or self.batch < 1 or self.max_crops < 1 or self.width < 1 or self.crop < 8
                or self.max_examples < 1):
            raise InputError("Epochs must be at least 0, the batch size, crops, examples and width at least 1 and "
                             "the crop at least 8 pixels.")
        self.dilation_list  # raises on a malformed list

    @property
    def dilation_list(self) -> list[int]:
        try:
            values = [int(v) for v in str(self.dilations).replace(";", ",").split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or min(values) < 1 or max(values) > 256:
            raise InputError(f"DILATIONS must be a comma-separated list of integers from 1 to 256 (got "
                             f"'{self.dilations}').")
        return values

    @property
    def halo(self) -> int:
        """The receptive radius of g: 1 (the first 3 x 3) + the sum of the dilations."""
        return 1 + sum(self.dilation_list)


def build_network(p: RefineParams, bands: int) -> Any:
    """g of the module docstring: [N, 3B, h, w] -> [N, B, h, w], last layer zero."""
    torch = import_torch()
    nn = torch.nn

    class Refinement(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Conv2d(3 * bands, p.width, 3, padding=1)
            self.context = nn.ModuleList(nn.Conv2d(p.width, p.width, 3, padding=d, dilation=d)
                                         for d in p.dilation_list)
            self.last = nn.Conv2d(p.width, bands, 1)
            zero_last_layer(self.last)
            # each input channel is clamped into the range of the training examples (set_input_range): no pair
            # shows a flood, and a network extrapolating a change larger than any it learned from made the
            # flood dates 45 % worse (realistic CIA-like seed 101, FSDAF base) while the other dates improved
            self.register_buffer("low", torch.full((1, 3 * bands, 1, 1), -float("inf")))
            self.register_buffer("high", torch.full((1, 3 * bands, 1, 1), float("inf")))

        def set_input_range(self, x) -> None:
            """low / high: the 0.1 and 99.9 percentiles of each channel of the training inputs [N, 3B, h, w]."""
            flat = x.transpose(0, 1).reshape(x.shape[1], -1)
            step = max(1, flat.shape[1] // 1_000_000)  # a regular subsample: quantile's input size is bounded
            q = torch.quantile(flat[:, ::step].float(), torch.tensor([0.001, 0.999]), dim=1)
            self.low.copy_(q[0].reshape(self.low.shape))
            self.high.copy_(q[1].reshape(self.high.shape))

        def forward(self, x):
            x = torch.maximum(torch.minimum(x, self.high), self.low)
            h = torch.relu(self.first(x))
            for conv in self.context:
                h = torch.relu(conv(h))
            return self.last(h)

    return Refinement()


def stack_inputs(base: np.ndarray, fine_ref: np.ndarray, coarse: np.ndarray, coarse_ref: np.ndarray) -> np.ndarray:
    """x(t) = [P(t), F(t_r), C(t) - C(t_r)] as one [3B, h, w] float32 array."""
    return np.concatenate([base, fine_ref, coarse - coarse_ref]).astype(np.float32, copy=False)


def example_dates(pair_dates: list[_dt.date], base: str) -> list[_dt.date]:
    """The pair dates the base method can predict from the other pairs (module docstring); at least two, one to
    hold out in time."""
    pairs = sorted(pair_dates)
    if base == "blend" and len(pairs) < 3:
        raise InputError(f"Refining the blend (stf:fuse_auto) needs at least three pairs: the blend that predicts "
                         f"each example is itself cross-validated on the other pairs, at least two of them; the "
                         f"series has {len(pairs)}. Choose a one-pair base (FSDAF, Fit-FC, STARFM or additive).")
    dates = pairs[1:-1] if base in TWO_SIDED else pairs
    if len(dates) < 2:
        need = "four pairs (two interior pairs)" if base in TWO_SIDED else "two pairs"
        raise InputError(f"The refinement learns the base method's error on pair dates it predicts from the other "
                         f"pairs and keeps a correction only when it helps on one more such date, which no example "
                         f"used: refining {base.upper()} needs at least {need}; the series has {len(pairs)}."
                         + (" Choose a one-pair base (FSDAF, Fit-FC, STARFM or additive) or BASE auto."
                            if base in TWO_SIDED and len(pairs) >= 2 else ""))
    return dates


def resolve_base(base: str, pair_dates: list[_dt.date]) -> str:
    """``auto``: ESTARFM (the best classic method on the realistic simulator) where it has two examples (four
    pairs or more), else FSDAF (the best one-pair method there; not STFDCNN's fusion model, module docstring); any
    other name as given."""
    if base != "auto":
        return base
    return "estarfm" if len(pair_dates) >= 4 else "fsdaf"


def fuse_base(base: str, series: SceneSeries, dates: list[_dt.date], folder: str, scales: Any, device: str,
              feedback: Feedback | None) -> list[str]:
    """The base method's predictions of ``dates`` with its default settings (gap-aware, as the method alone):
    a classic method or the additive baseline, ``stfdcnn``, STFDCNN's fusion model (its untrained networks:
    the LSR- and fine-level high-pass modulation of the paper without the CNNs), or ``blend``, stf:fuse_auto's
    default prediction (the trimmed mean of its members within 3x of the best one's RMSE, cross-validated on the
    pairs of ``series``: for an example, the other pairs only)."""
    if base == "blend":  # stf:fuse_auto's default prediction, cross-validated on the pairs it is given
        from ..auto import fuse_auto

        return fuse_auto(series, dates, folder, scales, choice="auto", uncertainty=False, device=device,
                         feedback=feedback).files
    return fuse_member(FUSION_MODEL if base == "stfdcnn" else base, series, dates, folder, scales, device, feedback)


@dataclass
class _Example:
    date: _dt.date
    reference: _dt.date
    base_path: str


def held_dates(dates: list[_dt.date]) -> list[_dt.date]:
    """The example dates held out in time: every other interior one (the 2nd, 4th, ...; at most 3, spread), so a
    held-out date has training targets on both sides; with two example dates, the later one."""
    inner = dates[1:-1:2]
    if len(inner) > 3:
        inner = [inner[round(i * (len(inner) - 1) / 2)] for i in range(3)]
    return inner or [dates[len(dates) // 2]]


def _plan(series: SceneSeries, dates: list[_dt.date], base: str, max_examples: int
          ) -> tuple[list[_dt.date], list[tuple[_dt.date, _dt.date | None]]]:
    """(held-out dates, [(target, sole reference pair or None: every other pair, the base method's own choice)]).
    The held-out dates are predicted as at prediction time (from every other pair). A one-pair base learns from
    every other target with each other pair alone as its reference (nearest first, at most ``max_examples`` in
    all, taken in turn over the targets); a two-pair base from every other target with every other pair."""
    held = held_dates(dates)
    targets = [t for t in dates if t not in held]
    if base in TWO_SIDED + ANY_PAIRS:
        return held, [(t, None) for t in targets]
    ranked = {t: sorted((k for k in series.pair_dates if k != t), key=lambda k: (abs((k - t).days), k))
              for t in targets}
    plan = []
    for rank in range(max(len(r) for r in ranked.values())):
        plan += [(t, ranked[t][rank]) for t in targets if rank < len(ranked[t])]
    return held, plan[:max(max_examples, len(targets))]


def _base_predictions(series: SceneSeries, plan: list[tuple[_dt.date, _dt.date | None]], base: str, folder: str,
                      scales: Any, device: str, feedback: Feedback | None) -> list[_Example]:
    """The base method's prediction of each planned target without its own pair: from its sole reference pair,
    or from every other pair."""
    out = []
    for k, (target, reference) in enumerate(plan):
        check_cancel(feedback)
        if reference is None:
            kept = [item for item in series.fine if item.date != target]
        else:
            kept = [series.fine_at(reference)]
        fold = SceneSeries(coarse=series.coarse, fine=tuple(kept))
        sub = SubFeedback(feedback, 100.0 * k / len(plan), 100.0 * (k + 1) / len(plan)) if feedback else None
        name = f"{target.isoformat()}_{reference.isoformat() if reference else 'all'}"
        path = fuse_base(base, fold, [target], os.path.join(folder, name), scales, device, sub)[0]
        out.append(_Example(target, fold.nearest_pair(target).date, path))
        if feedback is not None:
            feedback.info(f"refine: {base} predicted the pair {target.isoformat()} from "
                          + (f"the pair {reference.isoformat()}" if reference else "the other pairs")
                          + f" (reference {out[-1].reference.isoformat()}).")
    return out


@dataclass
class _Images:
    """An example's images over a window (reflectance [B, h, w]) and where all of them are valid [h, w]."""

    base: np.ndarray
    fine_ref: np.ndarray
    coarse: np.ndarray
    coarse_ref: np.ndarray
    truth: np.ndarray
    valid: np.ndarray

    @property
    def inputs(self) -> np.ndarray:
        return stack_inputs(self.base, self.fine_ref, self.coarse, self.coarse_ref)


def _read_example(series: SceneSeries, ex: _Example, window: Window | None, scales: Any) -> _Images:
    """The base prediction, the reference pair's fine and coarse images, the date's coarse and fine images of an
    example over ``window``."""
    base_item = DatedRaster(ex.date, ex.base_path, raster_info(ex.base_path, "base prediction"), "fine")
    p, ok = read_item(base_item, window, scales)
    f_ref, ok_r = read_item(series.fine_at(ex.reference), window, scales)
    c, ok_c = read_item(series.coarse_at(ex.date), window, scales)
    c_ref, ok_cr = read_item(series.coarse_at(ex.reference), window, scales)
    truth, ok_t = read_item(series.fine_at(ex.date), window, scales)
    return _Images(p, f_ref, c, c_ref, truth, ok & ok_r & ok_c & ok_cr & ok_t)


def _training_crops(series: SceneSeries, examples: list[_Example], p: RefineParams, scales: Any,
                    rng: np.random.Generator) -> tuple[Any, Any]:
    """At most ``max_crops`` windows, spread evenly over the examples, entirely valid:
    inputs [N, 3B, c, c] and the base method's error F - P [N, B, c, c]."""
    torch = import_torch()
    grid = series.grid
    size = min(p.crop, grid.height, grid.width)
    per = int(np.ceil(p.max_crops / len(examples)))
    xs, ys = [], []
    for ex in examples:
        images = _read_example(series, ex, None, scales)
        positions = patch_positions(images.valid, size, max(1, size // 8))
        if not positions:
            continue
        x, error = images.inputs, images.truth - images.base
        pick = rng.choice(len(positions), min(per, len(positions)), replace=False)
        for i in np.sort(pick):
            r, c = positions[i]
            xs.append(x[:, r:r + size, c:c + size].copy())  # copies: the scene's arrays are freed after
            ys.append(error[:, r:r + size, c:c + size].copy())
        del images, x, error
    if not xs:
        raise InputError("No training window: the example pairs have no window of CROP x CROP valid pixels; "
                         "lower CROP.")
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys).astype(np.float32))


def _holdout_design(series: SceneSeries, held: list[_Example]) -> HoldOut:
    """The held-out dates scored over the centre of the scene (at most ``VALIDATION_SIDE`` pixels a side)."""
    grid = series.grid
    bh, bw = min(VALIDATION_SIDE, grid.height), min(VALIDATION_SIDE, grid.width)
    block = Window((grid.width - bw) // 2, (grid.height - bh) // 2, bw, bh)
    return HoldOut(block, tuple((e.date, (e.reference,)) for e in held), False)


def _validator(net: Any, series: SceneSeries, held: list[_Example], holdout: HoldOut, halo: int, scales: Any,
               value_range: tuple[float, float], dev: Any) -> tuple[Any, Any, dict[str, float]]:
    """(validate, error_model, baselines): the held-out score of the refined predictions (mean over the held-out
    dates; parts: each date's quadrants of the block), the fit of the error estimate with the network as it is, and
    the naive and additive baselines on the same pixels."""
    torch = import_torch()
    grid = series.grid
    outer = holdout.outer(halo, grid.height, grid.width)
    b = holdout.block
    inner = (slice(None), slice(b.y - outer.y, b.y - outer.y + b.height), slice(b.x - outer.x, b.x - outer.x + b.width))
    cases, naive, add, side = [], [], [], []
    for ex in held:
        im = _read_example(series, ex, outer, scales)
        others = [d for d in series.pair_dates if d != ex.date]
        novelty, nok = novelty_map(series, novelty_fit(series, others, ex.date, scales), outer, scales)
        valid = (im.valid & nok)[inner[1:]]
        truth = im.truth[inner]
        naive.append(rmse(im.fine_ref[inner], truth, valid))
        add.append(rmse(additive(im.fine_ref, im.coarse_ref, im.coarse, value_range)[inner], truth, valid))
        cases.append((torch.from_numpy(im.inputs)[None].to(dev), im.base[inner], truth, valid))
        change = band_rms(im.coarse.astype(np.float64) - im.coarse_ref)
        side.append((change[inner[1:]][valid], novelty[inner[1:]][valid]))

    def refined(xt, base_in):
        correction = net(xt)[0].float().cpu().numpy()[inner]
        return np.clip(base_in + correction, *value_range), correction

    def validate() -> float:
        values, parts = [], []
        for xt, base_in, truth_in, valid in cases:
            pred, _ = refined(xt, base_in)
            values.append(rmse(pred, truth_in, valid))
            parts += quadrant_rmses(pred, truth_in, valid)
        return Score(float(np.mean(values)), parts)

    def error_model() -> dict[str, Any]:
        """The error estimate's coefficients (:mod:`..uncertainty`), fitted on the held-out dates with the kept
        network: features 1, the correction's size r = sqrt(mean_b g_b^2) and the coarse change's size."""
        features, errors = [], []
        with torch.no_grad():
            for (xt, base_in, truth_in, valid), (change, _) in zip(cases, side):
                pred, correction = refined(xt, base_in)
                r = band_rms(correction)[valid]
                features.append(np.stack([np.ones_like(r), r, change], axis=1))
                errors.append(np.sqrt(np.mean((pred.astype(np.float64) - truth_in) ** 2, axis=0))[valid])
        coef, n0 = fit_error_model(np.concatenate(features), np.concatenate(errors),
                                   np.concatenate([n for _, n in side]), ERROR_PIXELS)
        return {"coefficients": coef, "n0": n0, "features": ["1", "correction", "coarse change"]}

    return validate, error_model, {"naive": float(np.mean(naive)), "additive": float(np.mean(add))}


def train_refine(
    series: SceneSeries, pair_dates: list[_dt.date] | None, scale: Any, params: RefineParams,
    device: str = "auto", feedback: Feedback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the refinement of ``params.base`` on the scene's pairs (``pair_dates`` is not used: every pair the
    base method can predict from the others is an example); returns (state dicts, metadata)."""
    torch = import_torch()
    params.validate()
    require_fine_grid(series)
    check_encodings(series, scale)
    scales = as_scales(scale)
    dev = resolve_device(device)
    seed_everything(params.seed)
    rng = np.random.default_rng(params.seed)
    grid = series.grid
    params = replace(params, base=resolve_base(params.base, series.pair_dates))  # the model names its real base
    dates = example_dates(series.pair_dates, params.base)
    value_range = series_value_range(series, scales)
    # the base predictions are scratch files, removed at the end (a killed run's are cleaned by the next one)
    with scratch_dir("refine", os.path.join(tempfile.gettempdir(), "stf-fusion-scratch")) as tmp:
        held_at, plan = _plan(series, dates, params.base, params.max_examples)
        examples = _base_predictions(series, [(d, None) for d in held_at] + plan, params.base, tmp, scales, device,
                                     SubFeedback(feedback, 0.0, 30.0) if feedback else None)
        held, training = examples[:len(held_at)], examples[len(held_at):]
        holdout = _holdout_design(series, held)
        x, y = _training_crops(series, training, params, scales, rng)
        net = build_network(params, grid.bands).to(dev)
        net.set_input_range(x)
        validate, error_model, baselines = _validator(net, series, held, holdout, params.halo, scales, value_range,
                                                      dev)
    if feedback is not None:
        feedback.info(f"refine ({params.base}) training on {describe_device(dev)}: {len(x)} windows of "
                      f"{x.shape[-1]} pixels from " + ", ".join(f"{e.date.isoformat()} (reference "
                                                                f"{e.reference.isoformat()})" for e in training)
                      + f"; {holdout.describe()}.")
    optimizer = Adam(net.parameters(), lr=params.lr)  # torch.optim.Adam's arithmetic (training.Adam)
    history = train(net, optimizer, TensorBatches(x, y, params.batch, params.seed), params.epochs,
                    torch.nn.functional.mse_loss, validate, params.patience, dev,
                    SubFeedback(feedback, 30.0, 100.0) if feedback else None, label="refine: ", bf16=True,
                    min_gain=params.min_gain)
    record = validation_record(holdout, history.validation, history.best_epoch, baselines)
    record["base_rmse"] = record["untrained_rmse"]  # the untrained refinement IS the base method
    metadata = training_metadata(grid, scales, params, params.halo, sorted({e.date for e in training}),
                                 {"refine": history.as_dict()}, dev, validation=record, base=params.base,
                                 error_model=error_model())
    if feedback is not None:
        feedback.info(f"refine: held-out RMSE {record['rmse']:.5f} ({params.base} alone {record['base_rmse']:.5f}, "
                      f"additive {baselines['additive']:.5f}, naive {baselines['naive']:.5f}).")
    return {"refine": net.state_dict()}, metadata


def predict(
    meta: dict[str, Any], weights: dict[str, Any], series: SceneSeries, dates: list[_dt.date], folder: str,
    scale: Any, device: str = "auto", feedback: Feedback | None = None,
) -> list[str]:
    """Predict every date (``refine_<date>.tif``): the base method's prediction (default settings) plus g."""
    torch = import_torch()
    params = RefineParams(**meta["params"])
    params.validate()
    scales = as_scales(scale)
    dev = resolve_device(device)
    net = build_checked(lambda: build_network(params, series.grid.bands), weights["refine"], "refinement network")
    net = net.to(dev).eval()
    identity = is_zero_layer(net.last)
    with scratch_dir("refine", folder) as tmp:
        base_files = fuse_base(params.base, series, dates, os.path.join(tmp, "base"), scales, device,
                               SubFeedback(feedback, 0.0, 60.0) if feedback else None)
        bases = {d: DatedRaster(d, path, raster_info(path, "base prediction"), "fine")
                 for d, path in zip(dates, base_files)}
        refs = {d: series.nearest_pair(d) for d in dates}
        model = meta.get("error_model")
        fits = {d: novelty_fit(series, series.pair_dates, d, scales) for d in dates} if model else {}
        if feedback is not None:
            feedback.info(f"refine: {params.base} predictions refined from the reference pair(s) "
                          + ", ".join(sorted({r.date.isoformat() for r in refs.values()})) + ".")

        def predict_tile(date, tile):
            p, valid = read_item(bases[date], tile.outer, scales)
            f_ref, ok1 = read_item(refs[date], tile.outer, scales)
            c, ok2 = read_item(series.coarse_at(date), tile.outer, scales)
            c_ref, ok3 = read_item(series.coarse_at(refs[date].date), tile.outer, scales)
            valid = valid & ok1 & ok2 & ok3
            if identity:  # g = 0 value for value: the base prediction (a model that kept its start)
                residual = np.zeros_like(p)
            else:
                with torch.no_grad():
                    residual = net(torch.from_numpy(stack_inputs(p, f_ref, c, c_ref))[None].to(dev))[0].cpu().numpy()
            r, cols = tile.inner_in_outer
            out = ((p + residual)[:, r, cols], valid[r, cols])
            if not model:
                return out
            novelty, nok = novelty_map(series, fits[date], tile.outer, scales)
            size = band_rms(residual)
            error = estimate([np.ones_like(size), size, band_rms(c.astype(np.float64) - c_ref)],
                             model["coefficients"], novelty, model["n0"])
            return (*out, np.where(valid & nok, error, np.nan)[r, cols])

        return write_predictions(series, dates, METHOD, folder, predict_tile, scales, halo=int(meta["halo"]),
                                 bytes_per_pixel=4 * (2 * params.width / series.grid.bands + 8),
                                 feedback=SubFeedback(feedback, 60.0, 100.0) if feedback else None,
                                 value_range=series_value_range(series, scales),
                                 side=(ERROR,) if model else ())
