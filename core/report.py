"""HTML evaluation report: tables of means and per-date values, metric-over-time plots per method, a scatter plot
and an error map per prediction, and the metric conventions. One self-contained file (PNG images embedded), so
QGIS can show it as an HTML output and it can be mailed around."""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io

import numpy as np

from . import metrics
from .evaluation import Evaluation, method_means
from .raster import OutputTransaction

TIME_PLOTS = ("rmse", "ssim", "cc", "sam", "ergas", "edge")
_LOWER_IS_BETTER = {"rmse", "mae", "rmae", "sam", "ergas", "dd"}
# MAEC = |MAE - MAE_baseline| / MAE_baseline is 0 for the baseline itself and grows with a change either way: it
# ranks no method (read it with the MAEs)
_NO_BEST = {"maec"}


def new_figure(rows: int, cols: int, size: tuple[float, float]):
    """A matplotlib figure with its own Agg canvas: no pyplot, no global backend switch, safe in the worker threads
    QGIS runs algorithms in. Returns (figure, axes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols)


def _png(fig) -> str:
    """The figure as an inline PNG (laid out once by the figure's own layout engine: a "tight" bounding box on save
    draws every figure twice)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "&ndash;"
    if isinstance(value, float) and np.isinf(value):
        return "&infin;"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _table(header: list[str], rows: list[list]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows]
    return "\n".join(out) + "</table>"


def _time_plots(evaluation: Evaluation) -> str | None:
    overall = [r for r in evaluation.rows if r["band"] == "all" and r["date"]]
    if len({r["date"] for r in overall}) < 2:
        return None
    methods = sorted({r["method"] for r in overall})
    fig, axes = new_figure(2, 3, (12, 6))
    for ax, name in zip(axes.ravel(), TIME_PLOTS):
        for method in methods:
            items = sorted((r for r in overall if r["method"] == method), key=lambda r: r["date"])
            dates = [_dt.date.fromisoformat(r["date"]) for r in items]
            ax.plot(dates, [r[name] for r in items], marker="o", label=method)
        ax.set_title(name.upper() + (" (lower is better)" if name in _LOWER_IS_BETTER else ""))
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _png(fig)


def _prediction_plots(detail: dict) -> str:
    fig, (ax1, ax2) = new_figure(1, 2, (10, 4.2))
    fig.set_layout_engine("constrained")
    ref, pred = detail["ref_sample"], detail["pred_sample"]
    for b in range(ref.shape[0]):
        ax1.scatter(ref[b], pred[b], s=2, alpha=0.4, label=f"band {b + 1}")
    top = float(max(ref.max(), pred.max(), 1e-6))
    ax1.plot([0, top], [0, top], color="black", linewidth=0.8)
    ax1.set_xlabel("reference reflectance")
    ax1.set_ylabel("predicted reflectance")
    ax1.set_title("Prediction vs reference (sample of pixels)")
    ax1.legend(fontsize=6, markerscale=4, loc="upper left")  # ("best" searches every position: 40 % of the time)
    image = ax2.imshow(detail["error_map"], cmap="magma")
    ax2.set_title("Per-pixel RMSE over bands")
    ax2.set_axis_off()
    fig.colorbar(image, ax=ax2, fraction=0.046)
    fig.suptitle(f"{detail['method']} {detail['date']}")
    return _png(fig)


def write_html(evaluation: Evaluation, path: str, transaction: OutputTransaction, title: str = "") -> str:
    """Write the report to ``path`` through ``transaction``."""
    means = method_means(evaluation.rows)
    columns = list(metrics.METRICS)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title or 'Spatiotemporal fusion evaluation')}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:1300px}table{border-collapse:collapse;"
        "font-size:12px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#eef}td:first-child,td:nth-child(2){text-align:left}.best{font-weight:bold;"
        "background:#dfd}img{max-width:100%}dt{font-weight:bold;margin-top:.4em}</style></head><body>",
        f"<h1>{html.escape(title or 'Spatiotemporal fusion evaluation')}</h1>",
        f"<p>Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by the STF QGIS plugin "
        f"(stf:evaluate). {len(evaluation.details) or len({r['prediction'] for r in evaluation.rows})} predictions, "
        f"{len(means)} method(s). Bold: the best method for a metric.</p>",
        "<h2>Mean over dates (all bands)</h2>",
    ]
    header = ["method", "predictions"] + columns
    best = {}
    for k in columns:
        values = {m: v[k] for m, v in means.items() if np.isfinite(v[k])}
        if len(values) > 1 and k not in _NO_BEST:
            if k in _LOWER_IS_BETTER:
                best[k] = min(values, key=values.get)
            elif k in ("edge", "lbp", "ad"):
                best[k] = min(values, key=lambda m: abs(values[m]))
            else:
                best[k] = max(values, key=values.get)
    rows_html = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for method, values in means.items():
        cells = [f"<td>{html.escape(method)}</td>", f"<td>{values['n_predictions']}</td>"]
        cells += [f"<td{' class=best' if best.get(k) == method else ''}>{_fmt(values[k])}</td>" for k in columns]
        rows_html.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("\n".join(rows_html) + "</table>")
    plot = _time_plots(evaluation)
    if plot:
        parts += ["<h2>Metrics over time</h2>", f"<img src='{plot}' alt='metrics over time'>"]
    parts.append("<h2>Per prediction (all bands)</h2>")
    overall = [r for r in evaluation.rows if r["band"] == "all"]
    parts.append(_table(["date", "method"] + columns + ["n_pixels"],
                        [[r["date"], r["method"]] + [r[k] for k in columns] + [r["n_pixels"]] for r in overall]))
    if evaluation.details:
        parts.append("<h2>Scatter plots and error maps</h2>")
        for detail in evaluation.details:
            parts.append(f"<img src='{_prediction_plots(detail)}' alt='{html.escape(detail['method'])}'>")
    parts.append("<h2>Conventions</h2><dl>")
    for key, text in evaluation.conventions.items():
        parts.append(f"<dt>{html.escape(key)}</dt><dd>{html.escape(text)}</dd>")
    parts.append("</dl><p>Per-band values are in the CSV table.</p></body></html>")
    with open(transaction.add(path), "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path
