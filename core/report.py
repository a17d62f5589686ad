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
_LOWER_IS_BETTER = {"rmse", "mae", "rmae", "sam", "ergas"}
# MAEC = |MAE - MAE_baseline| / MAE_baseline is 0 for the baseline itself and grows with a change either way: it
# ranks no method (read it with the MAEs)
_NO_BEST = {"maec"}
# units of the table headers: reflectance differences, dB, degrees; relative metrics are fractions (the papers
# print some of them in per cent)
_UNITS = {"rmse": "refl.", "mae": "refl.", "ad": "refl.", "psnr": "dB", "sam": "deg", "rmae": "fraction",
          "maec": "fraction", "edge": "fraction", "lbp": "fraction"}


def _header(metric: str) -> str:
    return f"{metric} ({_UNITS[metric]})" if metric in _UNITS else metric


def plain_text(function):
    """Run a plotting function with matplotlib's mathtext off: names in titles and legends are text, so a file
    named ``a$b.tif`` is printed as such instead of failing as an unbalanced formula."""
    import functools

    @functools.wraps(function)
    def run(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return function(*args, **kwargs)

    return run


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


def _jpg(fig) -> str:
    """The figure as an inline JPEG: image strips are photographs (PNG made the report 10 MB)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpg", dpi=80, pil_kwargs={"quality": 80})
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rgb(thumb: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[bands, h, w] reflectance to an image for imshow, stretched by one (low, high) per band."""
    scaled = np.clip((thumb - low[:, None, None]) / (high - low)[:, None, None], 0, 1)
    return scaled[0] if scaled.shape[0] == 1 else np.moveaxis(scaled, 0, -1)


@plain_text
def _date_strip(date: str, details: list[dict]) -> str:
    """One figure per date: the reference and every method's prediction (one stretch, from the reference), and
    below each prediction its error (per-pixel RMSE over bands) on ONE colour scale shared by the methods."""
    ref = details[0]["ref_thumb"]
    ok = details[0]["thumb_valid"]
    values = ref[:, ok] if ok.any() else ref.reshape(ref.shape[0], -1)
    low, high = np.percentile(values, 2, axis=1), np.percentile(values, 98, axis=1)
    high = np.where(high > low, high, low + 1e-6)
    errors = np.concatenate([d["error_thumb"][np.isfinite(d["error_thumb"])] for d in details] or [np.zeros(1)])
    top = float(np.percentile(errors, 98)) if errors.size else 1.0
    n = len(details) + 1
    fig, axes = new_figure(2, n, (1.9 * n, 4.1))
    axes = np.asarray(axes).reshape(2, n)
    grey = "gray" if ref.shape[0] == 1 else None
    axes[0, 0].imshow(_rgb(ref, low, high), cmap=grey)
    axes[0, 0].set_title("reference", fontsize=8)
    axes[1, 0].text(0.5, 0.5, f"{date}\nerror: per-pixel\nRMSE over bands\n(reflectance,\n0 to {top:.3g})",
                    ha="center", va="center", fontsize=8)
    image = None
    for i, d in enumerate(details, start=1):
        axes[0, i].imshow(_rgb(d["pred_thumb"], low, high), cmap=grey)
        axes[0, i].set_title(d["method"], fontsize=8)
        image = axes[1, i].imshow(d["error_thumb"], cmap="magma", vmin=0, vmax=top)
    for ax in axes.ravel():
        ax.set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=list(axes[1, 1:]), fraction=0.03, pad=0.01)
    return _jpg(fig)


def _ranking(means: dict) -> str:
    """One line: the method with the lowest mean RMSE, and how it compares with the naive prediction."""
    scored = {m: v["rmse"] for m, v in means.items() if np.isfinite(v["rmse"])}
    if not scored:
        return ""
    best = min(scored, key=scored.get)
    line = f"Best: <b>{html.escape(best)}</b>, mean RMSE {scored[best]:.4g}"
    if "naive" in scored and best != "naive" and scored["naive"] > 0:
        line += f" ({100 * (scored[best] - scored['naive']) / scored['naive']:+.0f} % vs naive)"
    others = sorted((m for m in scored if m != best), key=scored.get)
    if others:
        line += "; then " + ", ".join(f"{html.escape(m)} {scored[m]:.4g}" for m in others)
    return f"<p class=ranking>{line}.</p>"


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


@plain_text
def _time_plots(evaluation: Evaluation) -> str | None:
    overall = [r for r in evaluation.rows if r["band"] == "all" and r["date"]]
    if len({r["date"] for r in overall}) < 2:
        return None
    methods = sorted({r["method"] for r in overall})
    fig, axes = new_figure(2, 3, (12, 6))
    for ax, name in zip(axes.ravel(), TIME_PLOTS):
        if not any(np.isfinite(r[name]) for r in overall):  # e.g. ERGAS without h/l: say so, no empty axes
            ax.text(0.5, 0.5, f"{name.upper()}: not computed\n(see the conventions)", ha="center", va="center")
            ax.set_axis_off()
            continue
        for method in methods:
            items = sorted((r for r in overall if r["method"] == method), key=lambda r: r["date"])
            dates = [_dt.date.fromisoformat(r["date"]) for r in items]
            ax.plot(dates, [r[name] for r in items], marker="o", label=method)
        ax.set_title(_header(name).upper() + (" (lower is better)" if name in _LOWER_IS_BETTER else ""), fontsize=9)
        for i, pair in enumerate(evaluation.pair_dates):  # the dates with a fine image, where methods start from
            ax.axvline(_dt.date.fromisoformat(pair), color="grey", linestyle=":", linewidth=1,
                       label="pair dates" if i == 0 else None)
        ax.set_xticks(sorted({_dt.date.fromisoformat(r["date"]) for r in overall}
                             | {_dt.date.fromisoformat(d) for d in evaluation.pair_dates}))  # acquisition dates
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
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
        _ranking(means),
        "<h2>Mean over dates (all bands)</h2>",
    ]
    header = ["method", "predictions"] + [_header(k) for k in columns]
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
    parts.append(_table(["date", "method"] + [_header(k) for k in columns] + ["n_pixels"],
                        [[r["date"], r["method"]] + [r[k] for k in columns] + [r["n_pixels"]] for r in overall]))
    if evaluation.error_estimates:
        items = evaluation.error_estimates
        ratio = float(np.mean([e["estimated"] for e in items])) / max(float(np.mean([e["true"] for e in items])), 1e-12)
        parts.append("<h2>Estimated against true error</h2><p>Predictions with an error estimate beside them "
                     "(stf:fuse_auto): the mean estimate against the mean true error (per-pixel RMS over the bands) "
                     f"and their correlation over the pixels. Over all of them, estimate / true = {ratio:.2f}.</p>")
        parts.append(_table(["date", "method", "estimated error", "true error", "estimate / true", "correlation"],
                            [[e["date"], e["method"], e["estimated"], e["true"], e["ratio"], e["correlation"]]
                             for e in items]))
    if evaluation.details:
        parts.append("<h2>Images per date</h2><p>The reference and each prediction with one stretch; below, each "
                     "prediction's error on one colour scale per date.</p>")
        by_date: dict[str, list[dict]] = {}
        for detail in evaluation.details:
            by_date.setdefault(detail["date"], []).append(detail)
        for date, details in sorted(by_date.items()):
            parts.append(f"<img src='{_date_strip(date, sorted(details, key=lambda d: d['method']))}' "
                         f"alt='images of {html.escape(date)}'>")
    parts.append("<h2>Conventions</h2><dl>")
    for key, text in evaluation.conventions.items():
        parts.append(f"<dt>{html.escape(key)}</dt><dd>{html.escape(text)}</dd>")
    parts.append("</dl><p>Per-band values are in the CSV table.</p></body></html>")
    with open(transaction.add(path), "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path
