"""Model files (SPEC.md "Model files"): ONE self-describing ``.stfmodel`` file per trained model.

The file is a zip archive holding ``metadata.json`` (method, format version, plugin version, bands, scale,
normalisation, halo, training dates, loss history, hyper-parameters) and ``weights.pt``, a ``torch.save`` of a
plain ``{network name: {parameter name: tensor}}`` dictionary. Loading uses ``torch.load(weights_only=True)``
(no arbitrary unpickling) with ``map_location``, so a model trained on a GPU loads on a CPU. Every problem with
a file (not a zip, missing entries, corrupt weights, newer format, unknown method, wrong band count) is a
:class:`~..errors.InputError` that names the file.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
import zipfile
from typing import Any

from ..device import import_torch
from ..errors import InputError

FORMAT = "stf-model"
FORMAT_VERSION = 1
EXTENSION = ".stfmodel"
KNOWN_METHODS = ("stfdcnn", "stf3dcnn", "dcnn", "dcstfn", "stfsr", "refine")


def plugin_version() -> str:
    """The version in the plugin's metadata.txt (two folders up), or 'unknown' outside the plugin."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "metadata.txt")
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("version="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def training_metadata(grid: Any, scale: Any, params: Any, halo: int, pair_dates: list, history: dict,
                      device: Any, **extra: Any) -> dict[str, Any]:
    """The metadata every trained model carries (SPEC.md "Model files"); ``extra`` adds method-specific keys."""
    from dataclasses import asdict

    from ..device import describe_device
    from ..series import as_scales

    scales = as_scales(scale)
    meta = {
        "bands": grid.bands, "band_names": list(grid.descriptions), "scale": scales.fine.scale,
        "encodings": {kind: {"scale": enc.scale, "offset": enc.offset}
                      for kind, enc in (("fine", scales.fine), ("coarse", scales.coarse))},
        "normalisation": "none: reflectance (stored value x scale + offset) in 0-1", "halo": int(halo),
        "params": asdict(params), "training_pairs": [d.isoformat() for d in pair_dates], "history": history,
        "trained_on": describe_device(device),
    }
    meta.update(extra)
    return meta


def save_model(path: str, method: str, networks: dict[str, dict[str, Any]], metadata: dict[str, Any]) -> str:
    """Write ``networks`` (state dicts) and ``metadata`` to ``path`` (normally a temporary path of an
    :class:`~..raster.OutputTransaction`)."""
    torch = import_torch()
    meta = dict(metadata)
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, method=method, plugin_version=plugin_version(),
                created=_dt.datetime.now().isoformat(timespec="seconds"), networks=sorted(networks))
    for name, state in networks.items():
        for key, value in state.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise InputError(f"The network '{name}' has non-finite weights ({key}): training diverged; lower the "
                                 "learning rate. No model was saved.")
    buffer = io.BytesIO()
    torch.save({name: {k: v.detach().cpu().contiguous() for k, v in state.items()}
                for name, state in networks.items()}, buffer)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps(meta, indent=2, default=str))
        archive.writestr("weights.pt", buffer.getvalue())
    return path


METADATA_LIMIT = 64 * 2**20  # bytes, as declared in the zip; a real model's metadata is a few hundred kB
WEIGHTS_LIMIT = 4 * 2**30  # bytes; the largest default model is a few MB


def _read_entry(archive: zipfile.ZipFile, name: str, limit: int, path: str) -> bytes:
    """One entry of a model file, refused before it is inflated when it declares more than ``limit`` bytes (a zip
    bomb: a few MB that inflate to GBs). zipfile never inflates beyond the declared size."""
    info = archive.getinfo(name)  # KeyError when missing
    if info.file_size > limit:
        raise InputError(f"The model file '{path}' declares {info.file_size / 2**20:.0f} MB for {name} (at most "
                         f"{limit / 2**20:.0f} MB are read): not a model file of this plugin (corrupt or crafted).")
    return archive.read(info)


def read_metadata(path: str) -> dict[str, Any]:
    """The metadata of a model file, checked (format, version, method)."""
    name = os.path.basename(path or "")
    if not path or not os.path.isfile(path):
        raise InputError(f"The model file '{path}' does not exist.")
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(_read_entry(archive, "metadata.json", METADATA_LIMIT, path).decode("utf-8"))
    except zipfile.BadZipFile:
        raise InputError(f"'{name}' is not an STF model file (not a zip archive; it may be corrupt or truncated): "
                         f"{path}.") from None
    except KeyError:
        raise InputError(f"'{name}' is not an STF model file (no metadata.json): {path}.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"The metadata of the model file '{path}' is unreadable: {exc}.") from None
    except RecursionError:
        raise InputError(f"The metadata of the model file '{path}' is nested too deeply to be a model's (corrupt or "
                         "crafted file).") from None
    if not isinstance(meta, dict):
        raise InputError(f"The metadata of the model file '{path}' is not an object ({type(meta).__name__}).")
    if meta.get("format") != FORMAT:
        raise InputError(f"'{name}' is not an STF model file (format '{meta.get('format')}'): {path}.")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(
            f"The model file '{path}' has format version {version}, newer than this plugin understands "
            f"({FORMAT_VERSION}); update the plugin (the file was made by version {meta.get('plugin_version')}).")
    problem = _metadata_problem(meta)
    if problem is not None:
        raise InputError(f"The model file '{path}' is not usable: {problem}.")
    return meta


def _metadata_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with the metadata's structure (None when nothing): the fields every prediction reads, with
    their types, and the method's parameters against its settings (no unknown or mistyped field)."""
    import dataclasses
    import importlib

    if meta.get("method") not in KNOWN_METHODS:
        return f"it is for the unknown method '{meta.get('method')}'"
    bands, halo, params = meta.get("bands"), meta.get("halo"), meta.get("params")
    if not isinstance(bands, int) or isinstance(bands, bool) or bands < 1:
        return f"'bands' must be a positive integer, not {bands!r}"
    if not isinstance(halo, int) or isinstance(halo, bool) or halo < 0:
        return f"'halo' must be a non-negative integer, not {halo!r}"
    if not isinstance(params, dict):
        return f"'params' must be an object, not {type(params).__name__}"
    for key, kind, item in (("training_pairs", list, str), ("band_names", list, str), ("networks", list, str),
                            ("validation", dict, None), ("history", dict, None)):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (item is not None and not all(isinstance(v, item) for v in value)):
            return (f"'{key}' must be {'a list of texts' if kind is list else 'an object'}, not "
                    f"{json.dumps(value)[:60]}")
    module = importlib.import_module(f"..{meta['method']}", __name__)
    cls = next(v for k, v in vars(module).items() if k.endswith("Params") and dataclasses.is_dataclass(v))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        return f"unknown {meta['method']} setting(s) {', '.join(unknown)} (made by another plugin version?)"
    for name, value in params.items():
        expected = type(fields[name].default)
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not ok or (expected is not bool and isinstance(value, bool)):
            return f"the setting '{name}' is {value!r}, not a {expected.__name__}"
    try:
        cls(**params).validate()
    except Exception as exc:  # the settings' own checks
        return f"its settings are invalid ({exc})"
    return None


def load_model(path: str, map_location: Any = "cpu") -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(metadata, state dicts) of a model file, tensors on ``map_location``; safe (weights only)."""
    torch = import_torch()
    meta = read_metadata(path)
    try:
        with zipfile.ZipFile(path) as archive:
            data = _read_entry(archive, "weights.pt", WEIGHTS_LIMIT, path)
        weights = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except KeyError:
        raise InputError(f"The model file '{path}' has no weights (weights.pt is missing).") from None
    except InputError:
        raise
    except Exception as exc:  # torch raises many types for corrupt data
        raise InputError(f"The weights in the model file '{path}' cannot be read (corrupt file?): {exc}") from None
    if not isinstance(weights, dict) or not all(isinstance(v, dict) for v in weights.values()):
        raise InputError(f"The weights in the model file '{path}' are not a set of networks (corrupt or crafted "
                         "file).")
    missing = [n for n in meta.get("networks", []) if n not in weights]
    if missing:
        raise InputError(f"The model file '{path}' lacks the network(s) {missing or meta.get('networks')}.")
    return meta, weights


class NetworkMismatchError(InputError):
    """A model file's settings and weights disagree (:func:`build_checked`); the caller names the file."""


def build_checked(build: Any, state: dict[str, Any], name: str) -> Any:
    """``build()`` (a network from the model's settings) once its shapes are known to match ``state`` (the file's
    weights for it): built first on torch's ``meta`` device, which allocates nothing, so settings that do not match
    the weights (a crafted width of 60 000 000) are a clear error before gigabytes are allocated."""
    torch = import_torch()
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except Exception as exc:  # noqa: BLE001  settings a network cannot be built from
        raise NetworkMismatchError(f"its settings build no {name} network ({exc})") from None
    given = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    if shapes != given:
        wrong = sorted(set(shapes) ^ set(given)) or [k for k in shapes if shapes[k] != given[k]]
        raise NetworkMismatchError(f"the weights of its {name} network do not match its settings (first "
                                   f"difference: {wrong[0]}); corrupt or crafted file")
    net = build()
    net.load_state_dict(state)
    return net


def check_compatible(meta: dict[str, Any], path: str, bands: int, what: str,
                     band_names: Any = ()) -> list[str]:
    """Raise unless the model was trained on ``bands`` bands, and on the same band names in the same order where
    both carry names (a series whose bands are in another order would be predicted silently wrong). Returns
    warnings: names that differ without being a reordering (another product's naming, or no names)."""
    name = os.path.basename(path)
    if meta.get("bands") != bands:
        raise InputError(f"The model '{name}' was trained on {meta.get('bands')} bands but {what} "
                         f"has {bands}; use a model trained on the same bands in the same order.")
    trained = [str(n).strip().lower() for n in meta.get("band_names") or []]
    given = [str(n).strip().lower() for n in band_names or []]
    if len(trained) != bands or len(given) != bands or not all(trained) or not all(given) or trained == given:
        return []
    if sorted(trained) == sorted(given):
        raise InputError(f"The bands of {what} are in another order ({', '.join(band_names)}) than the model "
                         f"'{name}' was trained on ({', '.join(meta['band_names'])}); reorder the bands.")
    return [f"Warning: the model '{name}' was trained on the bands {', '.join(meta['band_names'])}, {what} has "
            f"{', '.join(band_names)}: check that they are the same bands in the same order."]
