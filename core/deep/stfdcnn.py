"""STFDCNN (Song, Liu, Wang, Hang & Huang 2018, IEEE JSTARS 11(3)): two five-layer residual CNNs and a fusion
model of high-pass modulation and change-based weighting.

Training (per pair date used for training, fine F and coarse C on the fine grid):

* LSR fine  F^l = down(F), LSR coarse  M^l = down(C): bicubic downsampling by ``factor`` (paper: 10);
* NLM CNN, one per band:  M^l -> F^l, learning the residual R = F^l - M^l                     (eqs. 1-4)
* SR CNN, shared by all bands:  up(F^l) -> F, learning the residual R^s = F - up(F^l)             (eq. 5)
  (as in SRCNN, the low-resolution input is first brought to the output grid by bicubic interpolation);
* each CNN: conv k1 x k1, n1 filters, ReLU; conv k2 x k2, n2, ReLU; conv k3 x k3, 1 (n1 = 64, n2 = 32, k1 = 9,
  k2 = k3 = 5); MSE loss on 33 x 33 sub-images; SGD with learning rate 1e-4 for the first two layers and 1e-5 for
  the last (the paper's setting; momentum 0.9 as in SRCNN). Adam (same per-layer rates x 10) is an option.

Prediction of t2 from the pairs t1 (and t3):

* transitional LSR images T_i^l = NLM(M_i^l), i = 1, 2, 3;
* high-pass modulation L_21^l = L_1^l T_2^l / T_1^l and L_23^l = L_3^l T_2^l / T_3^l                 (eqs. 6-7)
  Guard: where T_1^l (T_3^l) is below 0.01 reflectance the ratio is unstable, and the modulation is additive
  there: L_1^l + T_2^l - T_1^l;
* weights w_i = (1 / |T_2 - T_i|) / sum_j (1 / |T_2 - T_j|) with the absolute changes summed over ``window`` x
  ``window`` patches centred on each pixel (overlapping patches; paper: 9 x 9)                         (eqs. 8-9);
* the same fusion at the fine level with T_i = SR(up(L_i^l)), i = 1, 3, and T_2 = SR(up(L^_2^l)), fine L_1, L_3.

One-pair mode (a single pair, or a date outside the pairs) keeps only the t1 end. The fine level runs tile by tile
with a halo of the SR CNN's receptive field plus the weighting window, so results do not depend on the tiling.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any


from ..device import describe_device, import_torch, resolve_device
from ..errors import InputError
from ..feedback import Feedback, SubFeedback, check_cancel
from ..fusion import write_predictions
from ..series import SceneSeries
from .common import box_sum, downsample, extract_patches, read_image, read_window, upsample, upsample_window, valid_lsr
from .modelfile import training_metadata
from .training import History, seed_everything, train

METHOD = "stfdcnn"
HPM_MIN = 0.01


@dataclass
class StfdcnnParams:
    """Training settings (defaults: the paper's where it gives them, see the module docstring)."""

    factor: int = 10
    patch: int = 33
    stride: int = 14
    epochs: int = 20
    batch: int = 64
    lr: float = 1e-4
    lr_last: float = 1e-5
    optimizer: str = "sgd"
    momentum: float = 0.9
    n1: int = 64
    n2: int = 32
    k1: int = 9
    k2: int = 5
    k3: int = 5
    window: int = 9
    validation: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        if self.factor < 2:
            raise InputError(f"The LSR downsampling factor must be at least 2 (got {self.factor}).")
        if self.optimizer not in ("sgd", "adam"):
            raise InputError(f"Unknown optimiser '{self.optimizer}'; use sgd or adam.")
        if self.epochs < 1 or self.batch < 1 or self.patch < 3:
            raise InputError("Epochs and batch size must be at least 1 and the patch size at least 3.")

    @property
    def receptive_radius(self) -> int:
        return self.k1 // 2 + self.k2 // 2 + self.k3 // 2


def build_network(p: StfdcnnParams) -> Any:
    """One residual CNN (NLM or SR): x + conv3(relu(conv2(relu(conv1(x))))), single channel in and out."""
    torch = import_torch()
    nn = torch.nn

    class ResidualCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, p.n1, p.k1, padding=p.k1 // 2)
            self.conv2 = nn.Conv2d(p.n1, p.n2, p.k2, padding=p.k2 // 2)
            self.conv3 = nn.Conv2d(p.n2, 1, p.k3, padding=p.k3 // 2)

        def forward(self, x):
            return x + self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))

    return ResidualCNN()


def _optimizer(net: Any, p: StfdcnnParams) -> Any:
    torch = import_torch()
    groups = [{"params": list(net.conv1.parameters()) + list(net.conv2.parameters()), "lr": p.lr},
              {"params": list(net.conv3.parameters()), "lr": p.lr_last}]
    if p.optimizer == "adam":
        for g in groups:
            g["lr"] *= 10
        return torch.optim.Adam(groups)
    return torch.optim.SGD(groups, momentum=p.momentum)


def train_stfdcnn(
    series: SceneSeries, pair_dates: list[_dt.date] | None, scale: float, params: StfdcnnParams,
    device: str = "auto", feedback: Feedback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the NLM CNNs (one per band) and the SR CNN; returns (state dicts, metadata)."""
    torch = import_torch()
    params.validate()
    dev = resolve_device(device)
    seed_everything(params.seed)
    pairs = [series.fine_at(d) for d in pair_dates] if pair_dates else list(series.fine)
    grid = series.grid
    f = params.factor
    if feedback is not None:
        feedback.info(f"STFDCNN training on {describe_device(dev)} with the pairs "
                      + ", ".join(p.date.isoformat() for p in pairs))
    lsr_in, lsr_out, lsr_ok, sr_in, sr_out, sr_ok = [], [], [], [], [], []
    for pair in pairs:
        fine, v1 = read_image(pair, scale)
        coarse, v2 = read_image(series.coarse_at(pair.date), scale)
        valid = v1 & v2
        fine_t = torch.from_numpy(fine)[:, None]  # [B, 1, H, W]
        fine_l = downsample(fine_t, f)
        lsr_in.append(downsample(torch.from_numpy(coarse)[:, None], f)[:, 0])
        lsr_out.append(fine_l[:, 0])
        lsr_ok.append(valid_lsr(valid, f))
        sr_in.append(upsample(fine_l, f, grid.height, grid.width)[:, 0])
        sr_out.append(fine_t[:, 0])
        sr_ok.append(valid)
    lsr_patch = min(params.patch, *lsr_ok[0].shape)
    if lsr_patch < params.patch and feedback is not None:
        feedback.info(f"The LSR images ({lsr_ok[0].shape[1]} x {lsr_ok[0].shape[0]}) are smaller than the "
                      f"{params.patch}-pixel sub-images; NLM sub-images of {lsr_patch} pixels are used.")
    bands = grid.bands
    networks, histories = {}, {}
    steps = bands + 1
    for b in range(bands + 1):
        sub = SubFeedback(feedback, 100.0 * b / steps, 100.0 * (b + 1) / steps) if feedback else None
        check_cancel(sub)
        if b < bands:
            name = f"nlm_{b}"
            xs, ys = zip(*[extract_patches([i[b:b + 1], o[b:b + 1]], ok, lsr_patch, max(1, lsr_patch // 3))
                           for i, o, ok in zip(lsr_in, lsr_out, lsr_ok)])
        else:
            name = "sr"
            xs, ys = zip(*[extract_patches([i, o], ok, params.patch, params.stride)
                           for i, o, ok in zip(sr_in, sr_out, sr_ok)])
            # all bands share the SR CNN: every band's patches are samples of one channel
            xs = [x.reshape(-1, 1, *x.shape[-2:]) for x in xs]
            ys = [y.reshape(-1, 1, *y.shape[-2:]) for y in ys]
        x, y = torch.cat(xs), torch.cat(ys)
        net = build_network(params).to(dev)
        history: History = train(net, _optimizer(net, params), x, y, params.epochs, params.batch,
                                 torch.nn.functional.mse_loss, params.validation, params.seed + b, dev, sub,
                                 label=f"{name} ({len(x)} sub-images): ")
        networks[name] = net.state_dict()
        histories[name] = history.as_dict()
    metadata = training_metadata(grid, scale, params, params.receptive_radius + params.window // 2,
                                 [p.date for p in pairs], histories, dev)
    return networks, metadata


def _load_networks(weights: dict[str, Any], params: StfdcnnParams, bands: int, dev: Any) -> tuple[list, Any]:
    nlm = []
    for b in range(bands):
        net = build_network(params)
        net.load_state_dict(weights[f"nlm_{b}"])
        nlm.append(net.to(dev).eval())
    sr = build_network(params)
    sr.load_state_dict(weights["sr"])
    return nlm, sr.to(dev).eval()


def hpm(reference: Any, t_target: Any, t_reference: Any) -> Any:
    """High-pass modulation L_ref * T_target / T_ref (eqs. 6-7), additive where T_ref < HPM_MIN."""
    torch = import_torch()
    safe = t_reference.abs() >= HPM_MIN
    ratio = reference * t_target / torch.where(safe, t_reference, 1.0)
    return torch.where(safe, ratio, reference + t_target - t_reference)


def change_weights(t2: Any, t1: Any, t3: Any, window: int) -> tuple[Any, Any]:
    """(w1, w3) of eq. 8 with the absolute changes summed over ``window`` x ``window`` patches."""
    a = box_sum((t2 - t1).abs(), window).clamp_min(1e-12)
    b = box_sum((t2 - t3).abs(), window).clamp_min(1e-12)
    w1 = (1.0 / a) / (1.0 / a + 1.0 / b)
    return w1, 1.0 - w1


def fuse(l1: Any, l3: Any | None, t1: Any, t2: Any, t3: Any | None, window: int) -> Any:
    """Eqs. 6-9 on [B, 1, H, W] tensors; one-pair mode when ``l3`` is None."""
    from_1 = hpm(l1, t2, t1)
    if l3 is None:
        return from_1
    from_3 = hpm(l3, t2, t3)
    w1, w3 = change_weights(t2, t1, t3, window)
    return w1 * from_1 + w3 * from_3


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
    cache: dict[str, Any] = {}

    def lsr(item, kind):
        key = item.path
        if key not in cache:
            data, valid = read_image(item, scale)
            low = downsample(torch.from_numpy(data)[:, None].to(dev), f)  # [B, 1, h, w]
            if kind == "coarse":
                with torch.no_grad():
                    low = torch.stack([nlm[b](low[b:b + 1])[0] for b in range(bands)])
            cache[key] = (low, valid)
        return cache[key]

    plans = {}
    for date in dates:
        around = series.pairs_around(date)
        ends = list(around) if around else [series.nearest_pair(date)]
        # LSR level, whole scene (small: 1 / factor^2 of the fine grid)
        l_low = [lsr(e, "fine")[0] for e in ends]
        t_low = [lsr(series.coarse_at(e.date), "coarse")[0] for e in ends]
        t2_low = lsr(series.coarse_at(date), "coarse")[0]
        fused_low = fuse(l_low[0], l_low[1] if len(ends) == 2 else None, t_low[0], t2_low,
                         t_low[1] if len(ends) == 2 else None, params.window)
        plans[date] = (ends, fused_low)
        if feedback is not None:
            feedback.info(f"STFDCNN {date.isoformat()}: pair(s) " + ", ".join(e.date.isoformat() for e in ends))
    # fine level, tile by tile; the transitional images of the pair ends are shared by the dates of a tile
    tile_cache: dict[Any, Any] = {}

    def transitional(low, tile):
        with torch.no_grad():
            return sr(upsample_window(low, f, tile.outer))

    def end_of_pair(end, tile):
        if tile_cache.get("tile") != tile.index:
            tile_cache.clear()
            tile_cache["tile"] = tile.index
        if end.path not in tile_cache:
            data, ok = read_window(end, tile, scale)
            tile_cache[end.path] = (torch.from_numpy(data)[:, None].to(dev), ok,
                                    transitional(lsr(end, "fine")[0], tile))
        return tile_cache[end.path]

    def predict(date, tile):
        ends, fused_low = plans[date]
        parts = [end_of_pair(e, tile) for e in ends]  # (fine L_i, validity, T_i) per end
        _, valid = read_window(series.coarse_at(date), tile, scale)
        for _, ok, _ in parts:
            valid = valid & ok
        with torch.no_grad():
            t2 = transitional(fused_low, tile)
            two = len(parts) == 2
            out = fuse(parts[0][0], parts[1][0] if two else None, parts[0][2], t2, parts[1][2] if two else None,
                       params.window)
        r, c = tile.inner_in_outer
        return out[:, 0, r, c].cpu().numpy(), valid[r, c]

    return write_predictions(series, dates, METHOD, folder, predict, scale, halo=int(meta["halo"]),
                             bytes_per_pixel=4 * (params.n1 + params.n2 + 24), tile_size=tile_size,
                             feedback=feedback)
