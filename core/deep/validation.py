"""Validation of the deep methods on the task they are used for (SPEC.md "Methods", item 5).

A training loss says how well a network fits its training samples, not how well the method predicts an unknown
date: STF3DCNN's loss kept falling while its predictions got worse. So every deep method is validated the way it
is used:

* a spatial block of the scene (the top-right corner, ``share`` of its area, at most ``max_side`` pixels a side)
  is held out: no training sample touches it;
* every pair date j is a validation target, predicted as if it were unknown from the other pairs (the last one
  before j and the first one after it, or the nearest other pair at the ends of the series), through the
  method's real prediction path (STFDCNN: transitional images + high-pass modulation + weights; STF3DCNN: the
  whole-series pass and time weighting; DCNN: the patch regression from the reference pair);
* the score is the mean over the targets of the RMSE (reflectance, every band, valid pixels of the block).

Epoch 0 is the untrained model (the identity of each method's residual formulation, i.e. its fusion/additive
baseline); the training loop keeps the epoch with the best score, so a model never ends worse on the held-out
data than its untrained start. The naive and additive baselines are scored on the same targets and recorded in
the model file beside the model's own score.

Two protocols (issue "Learning that pays", item 2; :func:`plan_validation`), recorded in the model file:

* ``temporal`` (3 pairs or more): interior pair dates are held out in time (:func:`temporal_split`): their fine
  images are training targets NOWHERE in the scene, and the whole scene (at most ``max_side`` pixels a side) is
  predicted on those dates from the training pairs. A spatial block alone leaks: the held-out dates' fine images
  were targets everywhere else, and the kept epoch could be worse than untrained on truly unseen dates.
* ``spatial`` (2 pairs, or when every pair trains): the block above.

Short gaps (:func:`add_short_gaps`; the DCNN and DCSTFN by default, STF3DCNN as an option): a held-out date is a
pair spacing from its references while most predicted dates are a few days or weeks from one, where the coarse
change is small and its date-specific error dominates it. So the held-out change is also moved a quarter and half
of the way towards the reference, with the coarse error a gap that short carries (:mod:`.coarse_noise`), and the
score is the mean over the quarter, half and whole way; the model file records the fractions (``short_gaps``).

In both, an epoch beyond 0 is kept only when it beats epoch 0 by more than the score's noise: the block (or scene)
is cut into quadrants, and the mean improvement over the (target, quadrant) parts must exceed twice its standard
error (:class:`Score`, :func:`significant`). Measured without this guard (realistic simulator, seed 202): STF3DCNN
kept an epoch 0.25 % better on its held-out date that was 8.7 % worse over the 7 predicted dates.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..naive import additive
from ..series import SceneSeries, nearest_date, read_item
from ..tiles import Window

if TYPE_CHECKING:
    from .coarse_noise import CoarseErrors


@dataclass(frozen=True)
class HoldOut:
    """The held-out block (fine grid) and the validation targets: (pair date, the pair dates it is predicted
    from, nearest first is NOT implied: in date order)."""

    block: Window
    targets: tuple[tuple[_dt.date, tuple[_dt.date, ...]], ...]
    spatial: bool = True  # False: the targets are dates no network was trained on; the block is not held out

    def overlaps(self, y: int, x: int, height: int, width: int, margin: int = 0) -> bool:
        """True when the window (y, x, height, width), grown by ``margin``, touches the block."""
        b = self.block
        return not (y + height + margin <= b.y or y - margin >= b.y + b.height
                    or x + width + margin <= b.x or x - margin >= b.x + b.width)

    def training_mask(self, height: int, width: int, margin: int = 0) -> np.ndarray:
        """[height, width]: True on the block grown by ``margin`` pixels (clipped), where no training sample may
        reach."""
        b = self.block
        mask = np.zeros((height, width), bool)
        mask[max(0, b.y - margin):b.y + b.height + margin, max(0, b.x - margin):b.x + b.width + margin] = True
        return mask

    def outer(self, halo: int, height: int, width: int) -> Window:
        """The block grown by ``halo`` pixels, clipped to the scene (what a prediction of the block reads)."""
        b = self.block
        x0, y0 = max(0, b.x - halo), max(0, b.y - halo)
        x1, y1 = min(width, b.x + b.width + halo), min(height, b.y + b.height + halo)
        return Window(x0, y0, x1 - x0, y1 - y0)

    def describe(self) -> str:
        b = self.block
        targets = "; ".join(f"{t.isoformat()} from {', '.join(r.isoformat() for r in refs)}"
                            for t, refs in self.targets)
        kind = "not used for training" if self.spatial else "held-out dates not used for training"
        return (f"validation window of {b.width} x {b.height} pixels at column {b.x}, row {b.y} ({kind}); "
                f"held-out dates: {targets}")


def plan_holdout(height: int, width: int, pair_dates: list[_dt.date], share: float = 0.25,
                 max_side: int = 384, held_dates: list[_dt.date] | None = None,
                 max_targets: int = 4) -> HoldOut | None:
    """The validation design for a scene of ``height`` x ``width`` pixels with the given pairs; None with fewer
    than two pairs (a pair cannot then be predicted from another) or no share.

    With ``held_dates`` (pair dates no network is trained on) only those are targets and the window (the scene,
    at most ``max_side`` pixels a side) is not excluded from training: a temporal hold-out. Otherwise the pairs
    are targets in a spatial block of ``share`` of the scene that training must avoid. At most ``max_targets``
    targets, spread over the series (validation time does not grow with the number of pairs)."""
    if len(pair_dates) < 2 or share <= 0:
        return None
    pairs = sorted(pair_dates)
    if held_dates:
        bh, bw = min(max_side, height), min(max_side, width)
        block = Window((width - bw) // 2, (height - bh) // 2, bw, bh)
    else:
        side = math.sqrt(share)
        bh = max(1, min(max_side, height // 2, round(height * side)))
        bw = max(1, min(max_side, width // 2, round(width * side)))
        block = Window(width - bw, 0, bw, bh)
    chosen = sorted(held_dates) if held_dates else pairs
    if len(chosen) > max_targets:
        chosen = [chosen[round(i * (len(chosen) - 1) / (max_targets - 1))] for i in range(max_targets)]
    targets = []
    for j in chosen:
        before = [p for p in pairs if p < j]
        after = [p for p in pairs if p > j]
        if before and after:
            refs = (before[-1], after[0])
        else:
            refs = (nearest_date(j, [p for p in pairs if p != j]),)
        targets.append((j, refs))
    return HoldOut(block, tuple(targets), spatial=not held_dates)


def temporal_split(pair_dates: list[_dt.date], max_held: int = 3) -> tuple[list[_dt.date], list[_dt.date]]:
    """(training pairs, held-out pairs): with 3 pairs or more every other interior pair is held out (the 2nd, 4th,
    ...; at most ``max_held``, spread over the series), so each held-out date has training pairs on both sides;
    with fewer pairs everything trains and nothing is held out in time."""
    pairs = sorted(pair_dates)
    if len(pairs) < 3:
        return pairs, []
    held = pairs[1:-1:2]
    if len(held) > max_held:
        held = [held[round(i * (len(held) - 1) / (max_held - 1))] for i in range(max_held)] if max_held > 1 \
            else [held[len(held) // 2]]
    return [d for d in pairs if d not in held], held


def plan_validation(pair_dates: list[_dt.date], chosen: list[_dt.date] | None, height: int, width: int,
                    share: float) -> tuple[list[_dt.date], "HoldOut | None"]:
    """(training pairs, validation design) of a learned method. ``chosen`` (the user's training pairs, or None
    for the method's choice): the series' interior pairs left out of it are the held-out dates; None:
    :func:`temporal_split`. Without a held-out date (2 pairs, or every pair chosen) the design is spatial."""
    pairs = sorted(pair_dates)
    if chosen:
        train = sorted(chosen)
        held = [d for d in pairs[1:-1] if d not in train]
    else:
        train, held = temporal_split(pairs)
    return train, plan_holdout(height, width, sorted(set(train) | set(held)), share, held_dates=held or None)


class Score(float):
    """A validation score (mean RMSE over the targets) that also carries its ``parts``: the RMSE of each
    (target, quadrant of the block), from which :func:`significant` judges an improvement against the noise."""

    parts: tuple[float, ...] = ()

    def __new__(cls, value: float, parts: tuple[float, ...] = ()) -> "Score":
        obj = super().__new__(cls, value)
        obj.parts = tuple(parts)
        return obj


def quadrant_rmses(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> list[float]:
    """The RMSE of [B, h, w] ``pred`` against ``truth`` in each quadrant of the window (the parts of a
    :class:`Score`)."""
    h, w = valid.shape
    return [rmse(pred[:, rows, cols], truth[:, rows, cols], valid[rows, cols])
            for rows in (slice(0, h // 2), slice(h // 2, h)) for cols in (slice(0, w // 2), slice(w // 2, w))]


def meets_min_gain(candidate: float, start: float, min_gain: float) -> bool:
    """True when ``candidate`` is at least ``min_gain`` (a share, e.g. 0.05) below ``start``: the minimum held-out
    gain a trained model needs to replace its untrained start (STFDCNN, STF3DCNN, the refinement)."""
    return candidate <= (1.0 - min_gain) * start


def significant(candidate: float, start: float) -> bool:
    """True when ``candidate`` beats ``start`` by more than the noise: the mean of the per-part improvements
    exceeds twice its standard error (both :class:`Score` with parts of the same targets and quadrants); plain
    numbers (no parts): any improvement."""
    a, b = getattr(candidate, "parts", ()), getattr(start, "parts", ())
    if len(a) < 2 or len(a) != len(b):
        return candidate < start
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    if not np.all(np.isfinite(d)):
        return candidate < start
    return bool(d.mean() > 2.0 * d.std(ddof=1) / math.sqrt(len(d)))


@dataclass
class BlockData:
    """Reflectance of every pair date over a window (the held-out block plus a halo): fine and coarse
    [B, h, w], validity [h, w], and where the block lies inside the window."""

    window: Window
    fine: dict[_dt.date, np.ndarray]
    coarse: dict[_dt.date, np.ndarray]
    valid: np.ndarray
    inner: tuple[slice, slice]


def read_block_data(series: SceneSeries, holdout: HoldOut, halo: int, scale: float) -> BlockData:
    """Read the fine and coarse images of every pair date over the block grown by ``halo``."""
    grid = series.grid
    window = holdout.outer(halo, grid.height, grid.width)
    fine, coarse, valid = {}, {}, None
    for item in series.fine:
        f, ok1 = read_item(item, window, scale)
        c_item = series.coarse_at(item.date)
        c, ok2 = read_item(c_item, window, scale)
        fine[item.date], coarse[item.date] = f, c
        ok = ok1 & ok2
        valid = ok if valid is None else valid & ok
    b = holdout.block
    inner = (slice(b.y - window.y, b.y - window.y + b.height), slice(b.x - window.x, b.x - window.x + b.width))
    return BlockData(window, fine, coarse, valid, inner)


def rmse(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    """Root mean square error over every band of the valid pixels: sqrt(mean((P - R)^2))."""
    if not valid.any():
        return float("nan")
    diff = (np.asarray(pred, np.float64) - truth)[:, valid]
    return float(np.sqrt(np.mean(diff * diff)))


def score(predictions: "dict[_dt.date, np.ndarray] | list[tuple[_dt.date, np.ndarray]]", data: BlockData) -> Score:
    """Mean over the predictions of the RMSE in the block, with the RMSE of each (prediction, quadrant) as its
    parts; ``predictions`` ({target: prediction}, or [(target, prediction)] when a target is predicted more than
    once, e.g. from each of its neighbouring pairs) cover the block only."""
    valid = data.valid[data.inner]
    values, parts = [], []
    items = predictions.items() if isinstance(predictions, dict) else predictions
    for d, p in items:
        truth = data.fine[d][(slice(None),) + data.inner]
        values.append(rmse(p, truth, valid))
        parts += quadrant_rmses(p, truth, valid)
    return Score(float(np.mean(values)) if values else float("nan"), parts)


def baseline_scores(data: BlockData, holdout: HoldOut, value_range: tuple[float, float],
                    each_reference: bool = False, plan: list | None = None) -> dict[str, float]:
    """The naive and additive baselines on the held-out targets, from the nearest reference, or from each
    neighbouring pair in turn (``each_reference``, as :func:`reference_plan` validates one-reference methods), or
    on the [(target, reference)] of ``plan`` (e.g. :func:`add_short_gaps`' targets)."""
    naive, add = [], []
    sl = (slice(None),) + data.inner
    if plan is None:
        plan = [(target, k) for target, refs in holdout.targets
                for k in (refs if each_reference else (nearest_date(target, refs),))]
    for target, k in plan:
        naive.append((target, data.fine[k][sl]))
        add.append((target, additive(data.fine[k][sl], data.coarse[k][sl], data.coarse[target][sl], value_range)))
    return {"naive": score(naive, data), "additive": score(add, data)}


def reference_plan(holdout: HoldOut) -> list[tuple[_dt.date, _dt.date]]:
    """[(target, reference)]: a method that predicts a date from ONE pair (the nearest) is validated from each
    neighbouring pair of each held-out date in turn, since its predictions use the pair before a date for some dates
    and the pair after for others. (DCSTFN on the realistic simulator, seed 101, validated from the nearest pair only,
    kept an epoch 25 % worse on the last date, predicted from the pair after; validated from both it keeps the same
    epoch, 2 % better on the held-out date from either side, still 3.4 % worse over all dates: the dates near a
    pair, where the coarse observation error dominates a small change, are not represented by a held-out date a
    pair spacing away. Scaling the held-out change down to a quarter, a "near" date with proportionally less error,
    did not reveal it either.)"""
    return [(target, ref) for target, refs in holdout.targets for ref in refs]


@dataclass(frozen=True)
class ShortGap:
    """A synthetic validation target a short time gap from its reference pair (:func:`add_short_gaps`): the key
    of its images in :class:`BlockData`."""

    target: _dt.date
    ref: _dt.date
    fraction: float


SHORT_GAP_FRACTIONS = (0.25, 0.5, 1.0)
SHORT_GAP_NOTE = ("validated a quarter, half and the whole way from each neighbouring pair to the held-out date, with "
                  "the coarse error of a gap that short (estimated from the coarse series).")


def short_gaps_used(plan: list | None) -> list[float]:
    """The fractions of the :class:`ShortGap` targets in a [(target, ...)] plan, sorted ([]: none)."""
    return sorted({t.fraction for t, _ in plan or () if isinstance(t, ShortGap)})


def add_short_gaps(errors: "CoarseErrors", data: BlockData, plan: list[tuple[_dt.date, _dt.date]],
                   fractions: tuple[float, ...] = SHORT_GAP_FRACTIONS,
                   seed: int = 0) -> list[tuple[ShortGap, _dt.date]]:
    """Validation targets at the time gaps a method predicts (issue "Learning that pays"): for each (held-out
    target, reference) of ``plan`` and each fraction a, the held-out change scaled to a, with the coarse error that
    a real gap that short carries (:class:`.coarse_noise.CoarseErrors`, two dates i != j drawn with ``seed``):

        C_a = C_ref + a (C_target - C_ref) + sqrt(1 - a^2) (n_i - n_j),       F_a = F_ref + a (F_target - F_ref)

    added to ``data`` under :class:`ShortGap` keys; returns [(key, reference)]. Predictions are mostly a few days
    to weeks from a pair while a held-out pair is a pair spacing from its reference, and where the coarse change is
    small its date-specific error dominates it: scaled WITHOUT that error (tried before, see
    :func:`reference_plan`), the short targets looked like the long one. Returns [] when the series has too few
    coarse dates for two error fields."""
    if not errors.usable:
        return []
    rng = np.random.default_rng(seed)
    fields: dict[int, np.ndarray] = {}

    def field(k: int) -> np.ndarray:
        if k not in fields:
            fields[k] = errors.field(k, data.window)
        return fields[k]

    out = []
    for target, ref in plan:
        for a in fractions:
            i, j = rng.choice(len(errors.plan), 2, replace=False)
            key = ShortGap(target, ref, a)
            data.coarse[key] = (data.coarse[ref] + a * (data.coarse[target] - data.coarse[ref])
                                + np.sqrt(1 - a * a) * (field(i) - field(j)))
            data.fine[key] = data.fine[ref] + a * (data.fine[target] - data.fine[ref])
            out.append((key, ref))
    return out


def one_reference_plan(holdout: HoldOut, data: BlockData, errors: "CoarseErrors | None",
                       ) -> list[tuple["_dt.date | ShortGap", _dt.date]]:
    """[(target, reference)] on which a method that predicts from ONE pair is validated: :func:`reference_plan`,
    or, with ``errors`` from a series that has enough coarse dates, its short-gap targets (:func:`add_short_gaps`)."""
    plan = reference_plan(holdout)
    if errors is not None:
        return add_short_gaps(errors, data, plan) or plan
    return plan


def validation_record(holdout: HoldOut | None, validation: list[float], best_epoch: int,
                      baselines: dict[str, float], plan: list | None = None) -> dict:
    """What a model file records about its held-out task: the design, the kept model's RMSE, its untrained
    start's and the naive and additive baselines' (mean RMSE over the held-out dates in the block); with a
    ``plan`` of :class:`ShortGap` targets (:func:`one_reference_plan`), the fractions of the way they were moved
    (``short_gaps``; absent: the held-out dates themselves)."""
    if holdout is None or not validation:
        return {"protocol": "none",
                "design": "none (fewer than two pairs, or no validation share): the last epoch was kept"}
    b = holdout.block
    record = {
        "protocol": "spatial" if holdout.spatial else "temporal",
        "design": holdout.describe(),
        "block": [b.x, b.y, b.width, b.height],
        "targets": {t.isoformat(): [r.isoformat() for r in refs] for t, refs in holdout.targets},
        "best_epoch": best_epoch,
        "rmse": validation[best_epoch],
        "untrained_rmse": validation[0],
        "naive_rmse": baselines.get("naive"),
        "additive_rmse": baselines.get("additive"),
    }
    fractions = short_gaps_used(plan)
    if fractions:
        record["short_gaps"] = fractions
    record["beats"] = {name: bool(record["rmse"] < record[f"{name}_rmse"])
                       for name in ("untrained", "naive", "additive") if record.get(f"{name}_rmse") is not None}
    return record


def model_warnings(meta: dict) -> list[str]:
    """Sentences for a user when a model did not beat its baselines on its held-out task (a record of the wrong
    shape, from a crafted or damaged file, gives one sentence saying so instead of an error)."""
    try:
        return _model_warnings(meta)
    except (AttributeError, KeyError, TypeError, ValueError):
        return ["Warning: this model's validation record is unreadable (damaged or edited file); its quality "
                "against the baselines is unknown."]


def _model_warnings(meta: dict) -> list[str]:
    record = meta.get("validation") or {}
    beats = record.get("beats") or {}
    kept_start = record.get("best_epoch") == 0
    # a model that kept its untrained start IS that start: not beating it is no news, beating nothing else is
    missed = [name for name, ok in beats.items() if not ok and not (kept_start and name == "untrained")]
    if not missed:
        return []
    names = {"untrained": "its untrained start", "naive": "the naive prediction", "additive": "the additive baseline"}
    figures = ", ".join(f"{names[m]} {record.get(f'{m}_rmse'):.5f}" for m in missed)
    kept = (" Training kept the untrained start: no epoch beat it beyond noise on the held-out dates."
            if kept_start else "")
    return [f"Warning: on its held-out validation dates this model (RMSE {record.get('rmse'):.5f}) did not beat "
            f"{figures}; a simpler method may predict this series better (train longer, on more pairs, or use "
            f"a classic method).{kept}"]
