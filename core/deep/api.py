"""Entry points shared by every deep method: write a trained model (with its loss curves), predict from a model
file whatever its method (what stf:predict calls)."""
from __future__ import annotations

import csv
import datetime as _dt
import importlib
import os
from typing import Any

from ..device import resolve_device
from ..errors import InputError
from ..feedback import Feedback
from ..raster import OutputTransaction
from ..series import SceneSeries
from .modelfile import EXTENSION, check_compatible, load_model, save_model

PREDICTORS = {"stfdcnn": "stfdcnn", "stf3dcnn": "stf3dcnn", "dcnn": "dcnn"}


def write_model(
    path: str, method: str, networks: dict[str, Any], metadata: dict[str, Any], transaction: OutputTransaction,
) -> tuple[str, str, str]:
    """Write the model file and, beside it, ``<name>.loss.csv`` and ``<name>.loss.png`` (loss per epoch of each
    network). Returns the three final paths."""
    if not path.lower().endswith(EXTENSION):
        path += EXTENSION
    save_model(transaction.add(path), method, networks, metadata)
    stem = path[: -len(EXTENSION)]
    csv_path, png_path = stem + ".loss.csv", stem + ".loss.png"
    history = metadata.get("history", {})
    with open(transaction.add(csv_path), "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["network", "epoch", "loss", "validation_loss"])
        for name, h in history.items():
            for i, loss in enumerate(h["train"]):
                val = h["validation"][i] if i < len(h["validation"]) else ""
                writer.writerow([name, i + 1, f"{loss:.6g}", f"{val:.6g}" if val != "" else ""])
    _plot_history(history, transaction.add(png_path), f"{method} training loss")
    return path, csv_path, png_path


def _plot_history(history: dict[str, Any], path: str, title: str) -> None:
    from ..report import new_figure

    fig, ax = new_figure(1, 1, (7, 4))
    for name, h in history.items():
        epochs = range(1, len(h["train"]) + 1)
        line, = ax.plot(epochs, h["train"], label=f"{name}")
        if h["validation"]:
            ax.plot(epochs, h["validation"], linestyle="--", color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (solid: training, dashed: validation)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)


def predict_with_model(
    model_path: str, series: SceneSeries, dates: list[_dt.date], folder: str, scale: float, device: str = "auto",
    feedback: Feedback | None = None, time_weighting: str | None = None,
) -> list[str]:
    """Predict ``dates`` with the method stored in ``model_path``; writes ``<method>_<date>.tif`` files.
    ``time_weighting`` overrides the saved setting of an STF3DCNN model (ignored by the other methods)."""
    dev = resolve_device(device)
    meta, weights = load_model(model_path, map_location=dev)
    check_compatible(meta, model_path, series.grid.bands, f"the fine image '{os.path.basename(series.grid.path)}'")
    module = importlib.import_module(f".{PREDICTORS[meta['method']]}", __package__)
    if feedback is not None:
        feedback.info(f"Model {os.path.basename(model_path)}: {meta['method']}, trained on "
                      f"{', '.join(meta.get('training_pairs', []))} ({meta.get('trained_on', '?')}), plugin "
                      f"{meta.get('plugin_version')}.")
    try:
        extra = {"time_weighting": time_weighting} if meta["method"] == "stf3dcnn" and time_weighting else {}
        return module.predict(meta, weights, series, dates, folder, scale, device, feedback, **extra)
    except (KeyError, RuntimeError) as exc:
        raise InputError(f"The model file '{model_path}' does not fit its method's networks (incompatible or "
                         f"corrupt): {exc}") from None
