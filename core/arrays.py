"""The array library of the classic methods: PyTorch when it is installed, else a NumPy stand-in.

STARFM, ESTARFM, FSDAF, Fit-FC and the benchmarks need no neural network, and PyTorch (~800 MB, the hardest
package to get into QGIS's Python on Windows and macOS) is only their way to reach a GPU. Their code is written
against the small part of torch's tensor API listed below; where torch cannot be imported, :func:`backend` returns
this module's NumPy stand-in of that part, so the same lines run on NumPy arrays (with the compiled numba kernels
when numba is present, exactly as on torch's CPU path). Only the learned methods and CUDA need torch.

The stand-in follows torch's semantics for what the methods use (``dim=`` reductions returning arrays, in-place
``*_`` methods, ``out=`` arguments, ``F.pad`` order, bicubic upsampling with a = -0.75 and align_corners=False);
it is not a general torch replacement: anything else raises AttributeError. ``STF_ARRAY_BACKEND=numpy`` forces it
where torch is installed (the equality tests compare both); results agree with the torch path to float32
rounding (tests/test_without_torch.py).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
from typing import Any

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool = np.dtype(np.bool_)  # noqa: A001  torch's name
float = float32  # noqa: A001  torch's default float
long = int64


def torch_importable() -> bool:
    """True when torch can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def backend() -> Any:
    """The array module of the classic methods: ``torch`` when importable (and not ``STF_ARRAY_BACKEND=numpy``),
    else this module (NumPy)."""
    if os.environ.get("STF_ARRAY_BACKEND", "").lower() != "numpy" and torch_importable():
        import torch

        return torch
    return sys.modules[__name__]


def is_numpy(xp: Any) -> Any:
    """True for this module (the NumPy stand-in), False for torch."""
    return xp is sys.modules[__name__]


def namespace_of(x: Any) -> Any:
    """The module that made ``x``: this one for NumPy arrays, else torch."""
    if isinstance(x, np.ndarray):
        return sys.modules[__name__]
    import torch

    return torch


class device:  # noqa: N801  torch's name
    """The CPU (the only device of the stand-in)."""

    def __init__(self, kind: str = "cpu", index: int | None = None) -> None:
        if kind != "cpu":
            raise ValueError(f"The NumPy array backend has no device '{kind}'.")
        self.type = "cpu"
        self.index = None

    def __repr__(self) -> str:
        return "device(type='cpu')"

    def __eq__(self, other: object) -> bool:
        return getattr(other, "type", other) == "cpu"

    def __hash__(self) -> int:
        return hash("cpu")


_CPU = device()


def _dtype(d: Any) -> Any:
    return None if d is None else np.dtype(d)


def _axis(dim: Any, axis: Any) -> Any:
    return axis if dim is None else dim


class Tensor(np.ndarray):
    """A NumPy array with the tensor methods the classic methods call (torch names and semantics)."""

    device = _CPU

    # reductions: torch's ``dim`` / ``keepdim`` (NumPy's own functions call these with ``axis``, which still works)
    def sum(self, dim=None, keepdim=False, axis=None, dtype=None, out=None, keepdims=None, **kw):  # noqa: D102
        return _wrap(np.ndarray.sum(self.view(np.ndarray), axis=_axis(dim, axis), dtype=dtype, out=out,
                                    keepdims=keepdim if keepdims is None else keepdims, **kw))

    def mean(self, dim=None, keepdim=False, axis=None, dtype=None, out=None, keepdims=None, **kw):  # noqa: D102
        return _wrap(np.ndarray.mean(self.view(np.ndarray), axis=_axis(dim, axis), dtype=dtype, out=out,
                                     keepdims=keepdim if keepdims is None else keepdims, **kw))

    def amax(self, dim=None, keepdim=False):  # noqa: D102
        return _wrap(np.amax(self.view(np.ndarray), axis=dim, keepdims=keepdim))

    def amin(self, dim=None, keepdim=False):  # noqa: D102
        return _wrap(np.amin(self.view(np.ndarray), axis=dim, keepdims=keepdim))

    def all(self, dim=None, keepdim=False, axis=None, out=None, keepdims=None, **kw):  # noqa: D102
        return _wrap(np.ndarray.all(self.view(np.ndarray), axis=_axis(dim, axis), out=out,
                                    keepdims=keepdim if keepdims is None else keepdims))

    def any(self, dim=None, keepdim=False, axis=None, out=None, keepdims=None, **kw):  # noqa: D102
        return _wrap(np.ndarray.any(self.view(np.ndarray), axis=_axis(dim, axis), out=out,
                                    keepdims=keepdim if keepdims is None else keepdims))

    def argmin(self, dim=None, axis=None, out=None, **kw):  # noqa: D102
        return _wrap(np.argmin(self.view(np.ndarray), axis=_axis(dim, axis)))

    def sort(self, dim=-1, stable=False, descending=False, axis=None, kind=None, order=None):  # noqa: D102
        """torch's sort: (values, indices); called as NumPy's (``axis`` / ``kind`` / ``order``) it sorts in place."""
        if axis is not None or kind is not None or order is not None:
            np.ndarray.sort(self.view(np.ndarray), axis=-1 if axis is None else axis, kind=kind, order=order)
            return None
        base = self.view(np.ndarray)
        order = np.argsort(-base if descending else base, axis=dim, kind="stable" if stable else "quicksort")
        return _wrap(np.take_along_axis(base, order, axis=dim)), _wrap(order)

    def gather(self, dim, index):  # noqa: D102
        return _wrap(np.take_along_axis(self.view(np.ndarray), np.asarray(index), axis=dim))

    # shape
    def dim(self) -> int:  # noqa: D102
        return self.ndim

    def flatten(self, start_dim=0, end_dim=-1):  # noqa: D102
        if isinstance(start_dim, str):  # NumPy's flatten(order)
            return np.ndarray.flatten(self, start_dim)
        shape = self.shape
        if not shape:
            return self.reshape(1)
        start = start_dim % len(shape)
        end = end_dim % len(shape)
        return self.reshape(shape[:start] + (-1,) + shape[end + 1:])

    def permute(self, *dims):  # noqa: D102
        return self.transpose(*dims)

    def expand_as(self, other):  # noqa: D102
        return np.broadcast_to(self, other.shape).view(Tensor)

    def split(self, size, dim=0):  # noqa: D102  chunks of ``size`` along ``dim``
        n = self.shape[dim]
        return tuple(np.take(self, range(i, min(i + size, n)), axis=dim).view(Tensor) for i in range(0, n, size))

    # conversions
    def to(self, *args, **kwargs):  # noqa: D102  a dtype converts; a device (the CPU) changes nothing
        for value in list(args) + [kwargs.get("dtype")]:
            if isinstance(value, (np.dtype, type)):
                return self.astype(value)
        return self

    def float(self):  # noqa: D102
        return self.astype(np.float32)

    def double(self):  # noqa: D102
        return self.astype(np.float64)

    def long(self):  # noqa: D102
        return self.astype(np.int64)

    def bool(self):  # noqa: D102
        return self.astype(np.bool_)

    def cpu(self):  # noqa: D102
        return self

    def detach(self):  # noqa: D102
        return self

    def numpy(self) -> np.ndarray:  # noqa: D102
        return self.view(np.ndarray)

    # element-wise
    def abs(self):  # noqa: D102
        return np.abs(self)

    def clamp(self, min=None, max=None):  # noqa: A002, D102
        return np.clip(self, min, max)

    def clamp_min(self, value):  # noqa: D102
        return np.maximum(self, np.asarray(value, self.dtype))

    # in place (each returns the tensor itself, as torch)
    def abs_(self):  # noqa: D102
        np.abs(self, out=self)
        return self

    def sqrt_(self):  # noqa: D102
        np.sqrt(self, out=self)
        return self

    def clamp_min_(self, value):  # noqa: D102
        np.maximum(self, np.asarray(value, self.dtype), out=self)
        return self

    def add_(self, other, alpha=1):  # noqa: D102
        np.add(self, other if alpha == 1 else np.multiply(other, alpha, dtype=self.dtype), out=self,
               casting="unsafe")
        return self

    def mul_(self, other):  # noqa: D102
        np.multiply(self, other, out=self, casting="unsafe")
        return self

    def copy_(self, other):  # noqa: D102
        np.copyto(self, other, casting="unsafe")
        return self

    def addcmul_(self, a, b, value=1):  # noqa: D102  self += value * a * b
        product = np.multiply(a, b, dtype=self.dtype)
        if value != 1:
            product *= np.asarray(value, self.dtype)
        self += product
        return self

    def logical_and_(self, other):  # noqa: D102
        np.logical_and(self, other, out=self)
        return self

    def logical_not_(self):  # noqa: D102
        np.logical_not(self, out=self)
        return self

    def masked_fill_(self, mask, value):  # noqa: D102
        np.copyto(self, np.asarray(value, self.dtype), where=np.asarray(mask))
        return self

    def index_add_(self, dim, index, source):  # noqa: D102
        target = np.moveaxis(self.view(np.ndarray), dim, 0)
        np.add.at(target, np.asarray(index), np.moveaxis(np.asarray(source), dim, 0))
        return self


def _wrap(x: Any) -> Any:
    """NumPy results as tensors (0-d included, so that ``.item()`` and ``.clamp_min`` work as on torch)."""
    if isinstance(x, Tensor):
        return x
    return np.asarray(x).view(Tensor)


def _out(result: Any, out: Any) -> Any:
    if out is None:
        return _wrap(result)
    np.copyto(out, result, casting="unsafe")
    return out


# creation
def from_numpy(a: np.ndarray) -> Tensor:
    """A tensor sharing ``a``'s memory."""
    return a.view(Tensor)


def as_tensor(a: Any, dtype: Any = None, device: Any = None) -> Tensor:  # noqa: D103
    return np.asarray(a, dtype=_dtype(dtype)).view(Tensor)


def tensor(a: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """A copy of ``a``, float32 for Python floats (torch's default)."""
    array = np.array(a, dtype=_dtype(dtype))
    if dtype is None and array.dtype == np.float64 and not isinstance(a, np.ndarray):
        array = array.astype(np.float32)
    return array.view(Tensor)


def zeros(shape: Any, dtype: Any = None, device: Any = None) -> Tensor:  # noqa: D103
    return np.zeros(shape, _dtype(dtype) or np.float32).view(Tensor)


def empty(shape: Any, dtype: Any = None, device: Any = None) -> Tensor:  # noqa: D103
    return np.empty(shape, _dtype(dtype) or np.float32).view(Tensor)


def ones(shape: Any, dtype: Any = None, device: Any = None) -> Tensor:  # noqa: D103
    return np.ones(shape, _dtype(dtype) or np.float32).view(Tensor)


def zeros_like(x: Any, dtype: Any = None) -> Tensor:  # noqa: D103
    return np.zeros_like(x, dtype=_dtype(dtype)).view(Tensor)


def ones_like(x: Any, dtype: Any = None) -> Tensor:  # noqa: D103
    return np.ones_like(x, dtype=_dtype(dtype)).view(Tensor)


def empty_like(x: Any, dtype: Any = None) -> Tensor:  # noqa: D103
    return np.empty_like(x, dtype=_dtype(dtype)).view(Tensor)


def full(shape: Any, value: Any, dtype: Any = None, device: Any = None) -> Tensor:  # noqa: D103
    return np.full(shape, value, _dtype(dtype) or np.float32).view(Tensor)


def arange(*args: Any, dtype: Any = None, device: Any = None) -> Tensor:  # noqa: D103
    return np.arange(*args, dtype=_dtype(dtype) or None).view(Tensor)


def cat(tensors: Any, dim: int = 0) -> Tensor:  # noqa: D103
    return np.concatenate(tensors, axis=dim).view(Tensor)


def stack(tensors: Any, dim: int = 0) -> Tensor:  # noqa: D103
    return np.stack(tensors, axis=dim).view(Tensor)


def meshgrid(*xs: Any, indexing: str = "ij") -> tuple:  # noqa: D103
    return tuple(g.view(Tensor) for g in np.meshgrid(*xs, indexing=indexing))


# element-wise
def where(condition: Any, a: Any, b: Any) -> Tensor:
    """torch.where: a Python number takes the tensor's dtype (NumPy 1's value-based casting does the same)."""
    return _wrap(np.where(condition, a, b))


def sqrt(x: Any) -> Tensor:  # noqa: D103
    return _wrap(np.sqrt(x))


def log(x: Any) -> Tensor:  # noqa: D103
    return _wrap(np.log(x))


def isfinite(x: Any) -> Tensor:  # noqa: D103
    return _wrap(np.isfinite(x))


def round(x: Any) -> Tensor:  # noqa: A001, D103  half to even, as torch
    return _wrap(np.round(x))


def floor(x: Any) -> Tensor:  # noqa: D103
    return _wrap(np.floor(x))


def minimum(a: Any, b: Any) -> Tensor:  # noqa: D103
    return _wrap(np.minimum(a, b))


def maximum(a: Any, b: Any) -> Tensor:  # noqa: D103
    return _wrap(np.maximum(a, b))


def sub(a: Any, b: Any, out: Any = None) -> Tensor:  # noqa: D103
    return _wrap(np.subtract(a, b, out=out))


def mul(a: Any, b: Any, out: Any = None) -> Tensor:  # noqa: D103
    return _wrap(np.multiply(a, b, out=out))


def add(a: Any, b: Any, alpha: Any = 1, out: Any = None) -> Tensor:  # noqa: D103
    dtype = out.dtype if out is not None else None
    return _wrap(np.add(a, b if alpha == 1 else np.multiply(b, alpha, dtype=dtype), out=out))


def lt(a: Any, b: Any, out: Any = None) -> Tensor:  # noqa: D103
    return _wrap(np.less(a, b, out=out))


def le(a: Any, b: Any, out: Any = None) -> Tensor:  # noqa: D103
    return _wrap(np.less_equal(a, b, out=out))


def gt(a: Any, b: Any, out: Any = None) -> Tensor:  # noqa: D103
    return _wrap(np.greater(a, b, out=out))


def sum(x: Any, dim: Any = None, out: Any = None) -> Tensor:  # noqa: A001, D103
    return _out(np.sum(np.asarray(x), axis=dim), out)


def mean(x: Any, dim: Any = None, out: Any = None) -> Tensor:  # noqa: D103
    return _out(np.mean(np.asarray(x), axis=dim, dtype=np.asarray(x).dtype), out)


def mm(a: Any, b: Any, out: Any = None) -> Tensor:  # noqa: D103
    return _out(np.matmul(a, b), out)


def addmm(m: Any, a: Any, b: Any, alpha: Any = 1, out: Any = None) -> Tensor:
    """m + alpha (a @ b)."""
    return _out(np.asarray(m) + alpha * np.matmul(a, b), out)


def cdist(a: Any, b: Any) -> Tensor:
    """Euclidean distances between the rows of ``a`` [N, D] and ``b`` [K, D]: [N, K], computed as torch does
    for more than 25 rows: one product of the rows extended with their squared norms, clamped, square-rooted."""
    a, b = np.asarray(a), np.asarray(b)
    ones_a, ones_b = np.ones((a.shape[0], 1), a.dtype), np.ones((b.shape[0], 1), b.dtype)
    left = np.concatenate([-2.0 * a, (a * a).sum(axis=1, keepdims=True), ones_a], axis=1).astype(a.dtype)
    right = np.concatenate([b, ones_b, (b * b).sum(axis=1, keepdims=True)], axis=1).astype(b.dtype)
    return _wrap(np.sqrt(np.maximum(left @ right.T, np.asarray(1e-30, a.dtype))))


def bincount(x: Any, minlength: int = 0) -> Tensor:  # noqa: D103
    return _wrap(np.bincount(np.asarray(x), minlength=minlength))


def allclose(a: Any, b: Any) -> Any:  # noqa: D103
    return np.allclose(a, b)


@contextlib.contextmanager
def no_grad():
    """The stand-in records no gradients; inside, NumPy is as quiet as torch about divisions by zero and invalid
    values (the methods mask them themselves)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        yield


def get_num_threads() -> int:
    """The cores NumPy's and numba's kernels may use."""
    return os.cpu_count() or 1


cuda = types.SimpleNamespace(is_available=lambda: False, device_count=lambda: 0)


# torch.nn.functional
def _pad(x: Any, pad: Any, value: Any = 0.0, mode: str = "constant") -> Tensor:
    """``pad`` = (last axis before, after, next-to-last before, after, ...), as torch."""
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "replicate":
        return np.pad(np.asarray(x), widths, mode="edge").view(Tensor)
    if mode != "constant":
        raise NotImplementedError(f"padding mode {mode}")
    return np.pad(np.asarray(x), widths, constant_values=np.asarray(value).astype(x.dtype)).view(Tensor)


def _one_hot(labels: Any, classes: int) -> Tensor:
    labels = np.asarray(labels)
    return (labels[..., None] == np.arange(classes)).astype(np.int64).view(Tensor)


def _cubic_weights(size: int, factor: int) -> np.ndarray:
    """[size x factor, size] bicubic upsampling matrix of one axis: Keys' kernel with a = -0.75 (torch's), output
    pixel centres at (i + 0.5) / factor - 0.5 in input pixels (align_corners=False), the edge pixel repeated."""
    a = -0.75
    out = np.arange(size * factor)
    x = (out + 0.5) / factor - 0.5
    x0 = np.floor(x).astype(np.int64)
    t = (x - x0).astype(np.float32)
    matrix = np.zeros((size * factor, size), np.float32)

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    for k, w in ((-1, far(t + 1)), (0, near(t)), (1, near(1 - t)), (2, far(2 - t))):
        np.add.at(matrix, (out, np.clip(x0 + k, 0, size - 1)), w)
    return matrix


def _interpolate(x: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: Any = None, antialias: Any = False) -> Tensor:
    """Bicubic upsampling by an integer factor (what Fit-FC uses), as torch computes it."""
    if mode != "bicubic" or size is not None or align_corners or antialias or int(scale_factor) != scale_factor:
        raise NotImplementedError("The NumPy array backend upsamples bicubically by an integer factor only.")
    factor = int(scale_factor)
    array = np.asarray(x)
    rows = _cubic_weights(array.shape[-2], factor)
    cols = _cubic_weights(array.shape[-1], factor)
    return _wrap(np.matmul(np.matmul(rows, array), cols.T).astype(array.dtype))


nn = types.SimpleNamespace(functional=types.SimpleNamespace(pad=_pad, one_hot=_one_hot, interpolate=_interpolate))
