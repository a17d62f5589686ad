"""The whole-series workflow behind the desktop dialog: resample if needed -> train if asked -> predict every
missing date -> evaluate against held-out pairs. Everything is written into a hidden staging folder inside the
output folder and moved into place only when every step has succeeded, so an error or a cancel at any stage
leaves no output behind."""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError
from .feedback import Feedback, SubFeedback, check_cancel
from .raster import Encoding, OutputTransaction
from .series import Scales, build_series, resample_series

CLASSIC = ("naive", "starfm", "estarfm", "fsdaf", "fitfc")
TRAINABLE = ("stfdcnn", "dcnn", "stf3dcnn", "dcstfn", "stfsr", "refine")
AUTO = "auto"  # stf:fuse_auto: the cross-validated members' prediction (core/auto.py)
CROSS_VALIDATE = "cross_validate"  # "Which method suits this scene?": no predictions, a ranking (core/crossval.py)


@dataclass
class WorkflowConfig:
    """What the dialog collects. ``method``: ``auto`` (stf:fuse_auto, the dialog's default), a classic method,
    ``model`` (predict with ``model_path``),
    ``train_<method>`` (train with ``epochs``, then predict) or ``cross_validate`` (rank the classic methods by
    leave-one-pair-out cross-validation; no prediction)."""

    fine: list[tuple[str, _dt.date]]
    coarse: list[tuple[str, _dt.date]]
    method: str
    output_folder: str
    model_path: str = ""
    epochs: int | None = None  # None: the method's default (at most; early stopping on held-out pairs)
    device: str = "auto"
    resample_method: str = "bicubic"
    holdout_dates: list[_dt.date] = field(default_factory=list)
    scale: float = 1e-4
    fine_scale: float | None = None  # None: scale
    fine_offset: float = 0.0
    coarse_scale: float | None = None
    coarse_offset: float = 0.0
    params: Any = None  # the method's settings (a StarfmParams, StfdcnnParams...); None: its defaults
    scheduler: str = ""  # SCHEDULER of the predictions: '' this process, local:N, or a Dask scheduler's address

    @property
    def scales(self) -> Scales:
        """The fine and coarse encodings (reflectance = stored x scale + offset)."""
        return Scales(Encoding(self.fine_scale or self.scale, self.fine_offset, "the fine scale"),
                      Encoding(self.coarse_scale or self.scale, self.coarse_offset, "the coarse scale"))


@dataclass
class WorkflowResult:
    method: str
    predictions: list[tuple[_dt.date, str]]
    model: str | None = None
    report: str | None = None
    table: str | None = None
    # the same run as Processing calls, (algorithm id, parameters) with the final paths: for the Processing
    # history (the method's own settings are added by the caller, which knows the algorithms' parameters)
    commands: list = field(default_factory=list)
    best: str | None = None  # cross-validation: the method with the lowest mean held-out RMSE


def _method_name(config: WorkflowConfig) -> str:
    if config.method in CLASSIC or config.method in (CROSS_VALIDATE, AUTO):
        return config.method
    if config.method.startswith("train_") and config.method[6:] in TRAINABLE:
        return config.method[6:]
    if config.method == "model":
        from .deep.modelfile import read_metadata

        return read_metadata(config.model_path)["method"]
    raise InputError(f"Unknown method '{config.method}'.")


def run_workflow(config: WorkflowConfig, feedback: Feedback | None = None) -> WorkflowResult:
    """Run the workflow; see the module docstring. No output may replace an input (:func:`.raster.protect_inputs`)."""
    from .executor import scheduler_scope
    from .raster import protect_inputs

    inputs = [p for p, _ in config.fine] + [p for p, _ in config.coarse] + [config.model_path or ""]
    with protect_inputs(inputs), scheduler_scope(config.scheduler):
        return _run_workflow(config, feedback)


def _run_workflow(config: WorkflowConfig, feedback: Feedback | None) -> WorkflowResult:
    if not config.output_folder:
        raise InputError("Choose an output folder.")
    os.makedirs(config.output_folder, exist_ok=True)
    method = _method_name(config)
    if method in TRAINABLE:  # before resampling anything: the install instructions first (classic: NumPy suffices)
        from .device import import_torch

        import_torch()
    holdout = set(config.holdout_dates)
    fine = [(p, d) for p, d in config.fine if d not in holdout]
    references = {d: p for p, d in config.fine if d in holdout}
    missing = holdout - set(references)
    if missing:
        raise InputError("Held-out date(s) without a fine image: " + ", ".join(sorted(d.isoformat() for d in missing)))
    if not fine:
        raise InputError("Every fine image is held out: keep at least one pair for fusion.")
    series = build_series([p for p, _ in fine], [p for p, _ in config.coarse],
                          [d for _, d in fine] + [d for _, d in config.coarse])
    from .raster import scratch_dir

    with scratch_dir("stf-run", config.output_folder) as staging:  # cleaned first; this run's lock held
        stage = lambda a, b: SubFeedback(feedback, a, b) if feedback else None  # noqa: E731
        out = config.output_folder
        commands: list[tuple[str, dict]] = []
        if not series.coarse_on_fine_grid:
            commands.append(("stf:resample_coarse", {"COARSE": [p for p, _ in config.coarse], "REFERENCE": fine[0][0],
                                                     "METHOD": config.resample_method,
                                                     "OUTPUT_FOLDER": os.path.join(out, "coarse_fine_grid")}))
            if feedback is not None:
                feedback.info(f"Resampling the coarse images onto the fine grid ({config.resample_method}).")
            with OutputTransaction() as tx:
                resample_series(series, os.path.join(staging, "coarse_fine_grid"), config.resample_method, tx,
                                stage(0, 10))
            folder = os.path.join(staging, "coarse_fine_grid")
            series = build_series([p for p, _ in fine], [os.path.join(folder, f"coarse_{d.isoformat()}.tif")
                                                         for _, d in config.coarse],
                                  [d for _, d in fine] + [d for _, d in config.coarse])
        check_cancel(feedback)
        if method == CROSS_VALIDATE:
            return _cross_validate(series, config, staging, commands, stage(10, 99))
        dates = series.predict_dates
        if not dates:
            raise InputError("Every coarse date has a fine image: there is nothing to predict.")
        predictions_dir = os.path.join(staging, "predictions")
        inputs = {"FINE": [f.path.replace(staging, out) for f in series.fine],
                  "COARSE": [c.path.replace(staging, out) for c in series.coarse],
                  "DATES": ",".join(d.isoformat() for d in [f.date for f in series.fine] + series.dates),
                  **_encoding_parameters(config)}
        model_file = None
        if config.method.startswith("train_"):
            model_file = _train(method, series, config, os.path.join(staging, "models"), stage(10, 60))
            commands.append((f"stf:train_{method}", {**inputs, "DEVICE": config.device,
                                                     **({"EPOCHS": config.epochs} if _epochs(config) else {}),
                                                     "MODEL": model_file.replace(staging, out)}))
        if method == AUTO:
            from .auto import fuse_auto

            auto = fuse_auto(series, dates, predictions_dir, config.scales, device=config.device,
                             feedback=stage(10, 90))
            files = auto.files
            commands.append(("stf:fuse_auto", {**inputs, "DEVICE": config.device, **_scheduler(config),
                                               "OUTPUT_FOLDER": os.path.join(out, "predictions")}))
        elif method in CLASSIC:
            from .fusion import fuse_method

            files = fuse_method(method, series, dates, predictions_dir, config.scales, config.params, config.device,
                                stage(10, 90))
            commands.append((f"stf:fuse_{method}", {**inputs, **({"DEVICE": config.device} if method != "naive"
                                                                 else {}), **_scheduler(config),
                                                    "OUTPUT_FOLDER": os.path.join(out, "predictions")}))
        else:
            from .deep.api import predict_with_model

            files = predict_with_model(model_file or config.model_path, series, dates, predictions_dir, config.scales,
                                       config.device, stage(60 if model_file else 10, 90))
            commands.append(("stf:predict", {"MODEL": (model_file or config.model_path).replace(staging, out),
                                             **inputs, "DEVICE": config.device, **_scheduler(config),
                                             "OUTPUT_FOLDER": os.path.join(out, "predictions")}))
        report = table = None
        if references:
            from .evaluation import evaluate_files, write_csv
            from .naive import fuse_naive
            from .report import write_html

            held = [f for f, d in zip(files, dates) if d in references]
            held_dates = [d for d in dates if d in references]
            # the naive prediction of the same dates: the baseline every method must beat (and MAEC's reference)
            baseline = held if method == "naive" else fuse_naive(
                series, held_dates, os.path.join(staging, "baseline"), config.scales)
            evaluation = evaluate_files(held + (baseline if method != "naive" else []),
                                        [references[d] for d in held_dates], baselines=baseline,
                                        scale=config.scales.fine, feedback=stage(90, 99))
            if method != "naive":
                commands.append(("stf:fuse_naive", {**inputs, "PREDICT_DATES": ",".join(d.isoformat()
                                                                                         for d in held_dates),
                                                    "OUTPUT_FOLDER": os.path.join(out, "baseline")}))
            final = [p.replace(staging, out) for p in held + (baseline if method != "naive" else [])]
            commands.append(("stf:evaluate", {"PREDICTIONS": final, "REFERENCES": [references[d] for d in held_dates],
                                              "BASELINE": [p.replace(staging, out) for p in baseline],
                                              "SCALE": config.scales.fine.scale,
                                              "OUTPUT_CSV": os.path.join(out, "evaluation.csv"),
                                              "OUTPUT_HTML": os.path.join(out, "evaluation.html")}))
            with OutputTransaction() as tx:
                table = write_csv(evaluation, os.path.join(staging, "evaluation.csv"), tx)
                report = write_html(evaluation, os.path.join(staging, "evaluation.html"), tx,
                                    title=f"{method}: held-out pairs")
        check_cancel(feedback)
        moved = _move_into_place(staging, config.output_folder)
        result = WorkflowResult(method, [(d, moved[f]) for d, f in zip(dates, files)],
                                moved.get(model_file) if model_file else None, moved.get(report), moved.get(table),
                                commands)
    if feedback is not None:
        feedback.set_progress(100)
    return result


def _cross_validate(series, config: WorkflowConfig, staging: str, commands: list, feedback) -> WorkflowResult:
    """Rank the classic methods on the series; the table and the report are moved into the output folder."""
    from .crossval import DEFAULT_METHODS, cross_validate, write_csv, write_html

    out = config.output_folder
    result = cross_validate(series, list(DEFAULT_METHODS), staging, config.scales, config.device, feedback)
    with OutputTransaction() as tx:
        table = write_csv(result, os.path.join(staging, "cross_validation.csv"), tx)
        report = write_html(result, os.path.join(staging, "cross_validation.html"), tx)
    commands.append(("stf:cross_validate", {"FINE": [f.path.replace(staging, out) for f in series.fine],
                                            "COARSE": [c.path.replace(staging, out) for c in series.coarse],
                                            "DATES": ",".join(d.isoformat() for d in
                                                              [f.date for f in series.fine] + series.dates),
                                            **_encoding_parameters(config), "DEVICE": config.device,
                                            **_scheduler(config), "OUTPUT_CSV": table.replace(staging, out),
                                            "OUTPUT_HTML": report.replace(staging, out)}))
    check_cancel(feedback)
    moved = _move_into_place(staging, out)
    return WorkflowResult(CROSS_VALIDATE, [], None, moved.get(report), moved.get(table), commands,
                          best=next(iter(result.mean_rmse())))


def _scheduler(config: WorkflowConfig) -> dict:
    """SCHEDULER of the recorded calls, where one was given."""
    return {"SCHEDULER": config.scheduler} if config.scheduler else {}


def _encoding_parameters(config: WorkflowConfig) -> dict:
    """SCALE and, where they differ from it, FINE_/COARSE_SCALE and _OFFSET, as the algorithms take them."""
    scales = config.scales
    values = {"SCALE": config.scale}
    for kind, enc in (("FINE", scales.fine), ("COARSE", scales.coarse)):
        if enc.scale != config.scale:
            values[f"{kind}_SCALE"] = enc.scale
        if enc.offset:
            values[f"{kind}_OFFSET"] = enc.offset
    return values


def _settings(config: WorkflowConfig, cls: type) -> Any:
    """The method's settings: the dialog's (or the defaults), with the dialog's epochs budget when one is set and
    the method has epochs (STFSR has none)."""
    import dataclasses

    base = config.params if isinstance(config.params, cls) else cls()
    has_epochs = any(f.name == "epochs" for f in dataclasses.fields(cls))
    return dataclasses.replace(base, **(_epochs(config) if has_epochs else {}))


def _epochs(config: WorkflowConfig) -> dict:
    """The epochs setting for a method's parameters: empty (its default) unless the user chose a number."""
    return {} if config.epochs is None or config.epochs < 0 else {"epochs": config.epochs}


def _train(method: str, series, config: WorkflowConfig, folder: str, feedback) -> str:
    from .deep.api import settings_class, train_method, write_model

    networks, meta = train_method(method, series, config.scales, _settings(config, settings_class(method)),
                                  config.device, feedback)
    with OutputTransaction() as tx:
        path, _, _ = write_model(os.path.join(folder, f"{method}.stfmodel"), method, networks, meta, tx)
    return path


def _move_into_place(staging: str, target: str) -> dict[str, str]:
    """Move every file of ``staging`` to the same relative place under ``target``; returns old -> new paths. Every
    destination is checked before anything moves: none may be an input of the run or a folder."""
    from .raster import check_not_input

    plan = []
    for base, _dirs, names in os.walk(staging):
        for name in names:
            source = os.path.join(base, name)
            destination = os.path.join(target, os.path.relpath(source, staging))
            check_not_input(destination)
            if os.path.isdir(destination):
                raise InputError(f"The output '{destination}' is a folder; nothing was written.")
            plan.append((source, destination))
    moved = {}
    for source, destination in plan:
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        os.replace(source, destination)
        moved[source] = destination
    return moved
