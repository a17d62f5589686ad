"""Entry points shared by every deep method: write a trained model (with its loss curves), predict from a model
file whatever its method (what stf:predict calls)."""
from __future__ import annotations

import csv
import datetime as _dt
import importlib
import os
from typing import Any

from ..device import resolve_device
from ..errors import InputError, StfError, os_error_message
from ..feedback import Feedback
from ..gaps import fuse_with_gaps
from ..raster import OutputTransaction
from ..series import SceneSeries
from .modelfile import EXTENSION, check_compatible, load_model, save_model

PREDICTORS = {"stfdcnn": "stfdcnn", "stf3dcnn": "stf3dcnn", "dcnn": "dcnn", "dcstfn": "dcstfn", "stfsr": "stfsr",
              "refine": "refine"}


def settings_class(method: str) -> type:
    """The settings dataclass of a learned method (``StfdcnnParams`` for ``stfdcnn``, ...)."""
    import dataclasses

    module = importlib.import_module(f".{PREDICTORS[method]}", __package__)
    return next(v for k, v in vars(module).items()
                if k.lower() == f"{method}params" and dataclasses.is_dataclass(v))


def train_method(method: str, series: SceneSeries, scale: Any, params: Any = None, device: str = "auto",
                 feedback: Feedback | None = None,
                 pair_dates: list[_dt.date] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train a learned method (``params`` None: its defaults; ``pair_dates`` None: its own choice of pairs);
    returns (networks, metadata) as ``write_model`` takes them."""
    module = importlib.import_module(f".{PREDICTORS[method]}", __package__)
    params = params if params is not None else settings_class(method)()
    train = getattr(module, f"train_{method}")
    if method == "stf3dcnn":  # trains on every date of the series at once
        return train(series, scale, params, device, feedback)
    return train(series, pair_dates, scale, params, device, feedback)


def predict_trained(method: str, networks: dict[str, Any], metadata: dict[str, Any], series: SceneSeries,
                    dates: list[_dt.date], folder: str, scale: Any, device: str = "auto",
                    feedback: Feedback | None = None) -> list[str]:
    """Predict with networks just trained, without a model file (the metadata as a model file gives it back)."""
    import json

    module = importlib.import_module(f".{PREDICTORS[method]}", __package__)
    meta = json.loads(json.dumps(metadata, default=str))

    def run(s: SceneSeries, d: list[_dt.date], out: str, fb: Feedback | None) -> list[str]:
        return module.predict(meta, networks, s, d, out, scale, device, fb)

    return fuse_with_gaps(method, run, series, dates, folder, scale, feedback, carry=_carried(meta))


def write_model(
    path: str, method: str, networks: dict[str, Any], metadata: dict[str, Any], transaction: OutputTransaction,
) -> tuple[str, str, str]:
    """Write the model file and, beside it, ``<name>.loss.csv`` and ``<name>.loss.png`` (per network and epoch:
    training loss and validation RMSE on the held-out task, epoch 0 = untrained; the kept epoch marked).
    Returns the three final paths."""
    if not path.lower().endswith(EXTENSION):
        path += EXTENSION
    try:
        return _write_model(path, method, networks, metadata, transaction)
    except OSError as exc:  # full disk, read-only file system: the message names the model file
        raise StfError(os_error_message(exc, f"writing the model '{path}'")) from None


def _write_model(path, method, networks, metadata, transaction) -> tuple[str, str, str]:
    save_model(transaction.add(path), method, networks, metadata)
    stem = path[: -len(EXTENSION)]
    csv_path, png_path = stem + ".loss.csv", stem + ".loss.png"
    history = metadata.get("history", {})
    with open(transaction.add(csv_path), "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["network", "epoch", "training_loss", "validation_rmse", "kept"])
        for name, h in history.items():
            val = h.get("validation_rmse", [])
            for epoch in range(max(len(h["train"]) + 1, len(val))):
                loss = f"{h['train'][epoch - 1]:.6g}" if 0 < epoch <= len(h["train"]) else ""
                rmse = f"{val[epoch]:.6g}" if epoch < len(val) else ""
                writer.writerow([name, epoch, loss, rmse, "yes" if val and epoch == h.get("best_epoch") else ""])
    _plot_history(history, metadata.get("validation", {}), transaction.add(png_path), f"{method} training")
    return path, csv_path, png_path


def _plot_history(history: dict[str, Any], validation: dict[str, Any], path: str, title: str) -> None:
    from ..report import plain_text

    plain_text(_draw_history)(history, validation, path, title)


def _draw_history(history: dict[str, Any], validation: dict[str, Any], path: str, title: str) -> None:
    from ..report import new_figure

    fig, (ax, bx) = new_figure(1, 2, (10, 4))
    for name, h in history.items():
        line, = ax.plot(range(1, len(h["train"]) + 1), h["train"], label=name)
        val = h.get("validation_rmse", [])
        if val:
            bx.plot(range(len(val)), val, color=line.get_color(), label=name)
            best = h.get("best_epoch", 0)
            bx.plot([best], [val[best]], marker="o", color=line.get_color())
    for key, style in (("naive_rmse", ":"), ("additive_rmse", "--")):
        if validation.get(key) is not None:
            bx.axhline(validation[key], linestyle=style, color="grey", label=key.replace("_rmse", ""))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (MSE)")
    ax.set_title(title)
    bx.set_xlabel("epoch (0 = untrained)")
    bx.set_ylabel("held-out RMSE (reflectance)")
    bx.set_title("validation on held-out pair dates (dot: kept)")
    for a in (ax, bx):
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)


def predict_with_model(
    model_path: str, series: SceneSeries, dates: list[_dt.date], folder: str, scale: float, device: str = "auto",
    feedback: Feedback | None = None, time_weighting: str | None = None, rules: str = "fill",
) -> list[str]:
    """Predict ``dates`` with the method stored in ``model_path``; writes ``<method>_<date>.tif`` files.
    ``time_weighting`` overrides the saved setting of an STF3DCNN model (ignored by the other methods); ``rules``
    as :func:`..gaps.fuse_with_gaps` (``fill``: what the network leaves empty is filled, with quality rasters)."""
    dev = resolve_device(device)
    meta, weights = load_model(model_path, map_location=dev)
    band_warnings = check_compatible(meta, model_path, series.grid.bands,
                                     f"the fine image '{os.path.basename(series.grid.path)}'",
                                     series.grid.descriptions)
    module = importlib.import_module(f".{PREDICTORS[meta['method']]}", __package__)
    if feedback is not None:
        feedback.info(f"Model {os.path.basename(model_path)}: {meta['method']}, trained on "
                      f"{', '.join(meta.get('training_pairs', []))} ({meta.get('trained_on', '?')}), plugin "
                      f"{meta.get('plugin_version')}.")
    from .validation import model_warnings

    for warning in band_warnings + model_warnings(meta):
        if feedback is not None:
            feedback.info(warning)
    extra = {"time_weighting": time_weighting} if meta["method"] == "stf3dcnn" and time_weighting else {}

    def run(s: SceneSeries, d: list[_dt.date], out: str, fb: Feedback | None) -> list[str]:
        from .modelfile import NetworkMismatchError

        try:
            return module.predict(meta, weights, s, d, out, scale, device, fb, **extra)
        except NetworkMismatchError as exc:
            raise InputError(f"The model file '{model_path}' is not usable: {exc}.") from None
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise InputError(f"The model file '{model_path}' does not fit its method's networks (incompatible or "
                             f"corrupt): {exc}") from None

    return fuse_with_gaps(meta["method"], run, series, dates, folder, scale, feedback, rules, carry=_carried(meta))


def _carried(meta: dict[str, Any]) -> tuple:
    """The side layers a model's predictions carry: the refinement's error estimate."""
    from ..uncertainty import ERROR

    return (ERROR,) if meta.get("error_model") else ()
