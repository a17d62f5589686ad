"""Training loop shared by the deep methods: seeding, batches, epochs with progress and cancel, validation on the
task (:mod:`.validation`) with epoch 0 = the untrained model, best-epoch selection and early stopping."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..device import import_torch
from ..errors import CancelledError, InputError
from ..feedback import Feedback


def seed_everything(seed: int) -> None:
    """Make a training run repeatable on the same device (torch and numpy generators)."""
    import random

    import numpy as np

    torch = import_torch()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def zero_last_layer(layer: Any) -> None:
    """Set a layer's weights and bias to zero, so a residual network ``x + f(x)`` starts as the identity (its
    untrained output is the baseline of its residual formulation; training can only move from there)."""
    torch = import_torch()
    with torch.no_grad():
        layer.weight.zero_()
        if layer.bias is not None:
            layer.bias.zero_()


def is_zero_layer(layer: Any) -> bool:
    """True while ``layer``'s weights and bias are all zero (:func:`zero_last_layer`'s start, untrained or kept):
    its output is then zero for any finite input, and a residual network ending in it is the identity, which the
    predictions need not run."""
    bias = layer.bias
    return not (bool(layer.weight.detach().any()) or (bias is not None and bool(bias.detach().any())))


def bf16_training(device: Any) -> bool:
    """Whether the training forward passes run in bfloat16 (autocast) on ``device``: on a CPU with native bfloat16
    arithmetic (AVX512-BF16 or AMX), unless ``STF_TRAIN_PRECISION=fp32``. Why: the convolutions of STFDCNN's and
    STF3DCNN's training run near the CPU's float32 peak (profiled, bench notes), so fewer flops per sample was the
    only 2x left; measured 2.5x per STFDCNN SR step (bf16 + channels-last) on the 2-core Zen 4 machine. What stays
    float32: the weights and the optimiser (autocast keeps float32 master weights), the loss, the residual path
    (x + f(x): the identity start is exact, only the learned correction f is rounded to bf16's 8 bits), and every
    validation, selection and prediction. Elsewhere (CUDA, or a CPU without native bf16, where it is emulated and
    slower) training stays float32."""
    import os

    torch = import_torch()
    if os.environ.get("STF_TRAIN_PRECISION", "").lower() in ("fp32", "float32"):
        return False
    if torch.device(device).type != "cpu":
        return False
    cpu = getattr(torch, "cpu", None)
    native = any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported",
                                                                   "_is_amx_tile_supported"))
    return bool(native)


class Adam:
    """Adam (Kingma & Ba 2015, "Adam: a method for stochastic optimization", ICLR), as ``torch.optim.Adam`` computes
    it without weight decay, AMSGrad or maximisation (its single-tensor path, operation for operation, so the
    weights are the same: tested), for every parameter p with gradient g at step t:

        m = lerp(m, g, 1 - beta1),   v = beta2 v + (1 - beta2) g^2,
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Why not ``torch.optim.Adam`` itself: torch's optimisers import ``torch._dynamo`` (the compiler) when the first
    one is made, 1.2 s of STFDCNN's 18 s default training on the sample on 2 CPU cores (issue 28, measured by
    cProfile). ``param_groups``: dicts with ``params`` and optionally ``lr``, as torch's."""

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = [{"params": list(g["params"]), "lr": g.get("lr", lr)} for g in params]
        self.betas, self.eps = betas, eps
        self.state: dict[Any, dict[str, Any]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def step(self) -> None:
        torch = import_torch()
        beta1, beta2 = self.betas
        with torch.no_grad():
            for group in self.param_groups:
                lr = group["lr"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = {
                            "step": torch.tensor(0.0),
                            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                            "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
                    state["step"] += 1
                    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                    exp_avg.lerp_(grad, 1 - beta1)
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    step = state["step"].item()
                    bias_correction1 = 1 - beta1 ** step
                    bias_correction2 = 1 - beta2 ** step
                    step_size = lr / bias_correction1
                    bias_correction2_sqrt = bias_correction2 ** 0.5
                    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
                    p.addcdiv_(exp_avg, denom, value=-step_size)


@dataclass
class History:
    """Per epoch: training loss (mean over the epoch's batches; none for epoch 0) and validation RMSE on the
    held-out task (index 0 = the untrained model); the epoch kept."""

    train: list[float] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    samples_per_second: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"train": self.train, "validation_rmse": self.validation, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early, "seconds": round(self.seconds, 3),
                "samples_per_second": round(self.samples_per_second, 2)}


class TensorBatches:
    """Shuffled mini-batches of ``inputs`` [N, ...] and ``targets`` [N, ...] (kept on the CPU)."""

    def __init__(self, inputs: Any, targets: Any, batch: int, seed: int = 0) -> None:
        torch = import_torch()
        self.inputs, self.targets, self.batch = inputs, targets, batch
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return max(1, math.ceil(self.inputs.shape[0] / self.batch))

    @property
    def samples(self) -> int:
        return int(self.inputs.shape[0])

    def __call__(self, epoch: int) -> Iterator[tuple[Any, Any]]:
        torch = import_torch()
        perm = torch.randperm(self.inputs.shape[0], generator=self.gen)
        for b in range(len(self)):
            idx = perm[b * self.batch:(b + 1) * self.batch]
            yield self.inputs[idx], self.targets[idx]


def train(
    model: Any, optimizer: Any, batches: Any, epochs: int, loss_fn: Callable[[Any, Any], Any],
    validate: Callable[[], float] | None = None, patience: int = 0, device: Any = "cpu",
    feedback: Feedback | None = None, label: str = "", noise_guard: bool = True, bf16: bool = False,
    min_gain: float = 0.0,
) -> History:
    """Train ``model`` for at most ``epochs`` passes over ``batches`` (callable epoch -> iterator of (x, y) on the
    CPU, with ``len()`` batches and ``samples`` samples per epoch).

    ``validate()`` scores the current model on the held-out task (lower is better); it is called before training
    (epoch 0, the untrained model) and after every epoch. The weights of the best epoch are restored at the end
    (epoch 0 included: a model never leaves worse than its start on the held-out data), and training stops after
    ``patience`` epochs without improvement (0: never early). Progress is reported per batch, cancel checked per
    batch; a non-finite loss stops training with an error (lower the learning rate). With ``noise_guard`` (the
    default) an epoch beyond 0 replaces the untrained start only when it beats it by more than
    the score's noise (:func:`.validation.significant`). With ``bf16`` the forward passes of training run under
    bfloat16 autocast where :func:`bf16_training` allows it (validation stays float32). With ``min_gain`` an epoch
    beyond 0 must also beat the untrained start by at least that share of its score (e.g. 0.05: 5 %)."""
    from .validation import meets_min_gain, significant

    torch = import_torch()
    history = History()
    best_state = None
    scores: list = []  # the validation scores with their parts (for the noise guard)
    validation_seconds = 0.0
    if validate is not None:
        tick = time.perf_counter()
        scores.append(_validate(model, validate))
        validation_seconds = time.perf_counter() - tick
        history.validation.append(float(scores[0]))
        best_state = copy_state(model)
        if feedback is not None:
            feedback.info(f"{label}epoch 0 (untrained): validation RMSE {history.validation[0]:.5f}")
    start = time.perf_counter()
    low_precision = bf16 and bf16_training(device)
    n_batches = len(batches)
    samples = 0
    since_best = 0
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for b, (x, y) in enumerate(batches(epoch)):
            if feedback is not None and feedback.is_canceled():
                raise CancelledError()
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision):
                out = model(x)
            loss = loss_fn(out.float(), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise InputError(f"{label}training diverged: the loss is {value} at epoch {epoch + 1}, batch "
                                 f"{b + 1}; lower the learning rate. No model was saved.")
            loss.backward()
            optimizer.step()
            if epoch == 0 and b == 0 and feedback is not None:  # the time estimate, from the first batch
                batch_seconds = time.perf_counter() - start
                estimate = epochs * (n_batches * batch_seconds + validation_seconds)
                feedback.info(f"{label}at most {epochs} epochs of {n_batches} batches: about {estimate:.0f} s "
                              f"({batch_seconds:.2f} s per batch, {validation_seconds:.1f} s per validation; early "
                              f"stopping may end it sooner).")
            total += value * len(x)
            count += len(x)
            if feedback is not None:
                feedback.set_progress(100.0 * (epoch * n_batches + b + 1) / (epochs * n_batches))
        samples += count
        history.train.append(total / max(count, 1))
        message = f"{label}epoch {epoch + 1}/{epochs}: loss {history.train[-1]:.3e}"
        if validate is not None:
            scores.append(_validate(model, validate))
            history.validation.append(float(scores[-1]))
            message += f", validation RMSE {history.validation[-1]:.5f}"
            better = history.validation[-1] < history.validation[history.best_epoch]
            if better and noise_guard and not significant(scores[-1], scores[0]):
                better = False
            if better and not meets_min_gain(history.validation[-1], history.validation[0], min_gain):
                better = False
            if better:
                history.best_epoch, best_state, since_best = epoch + 1, copy_state(model), 0
            else:
                since_best += 1
        if feedback is not None:
            feedback.info(message)
        if patience and since_best >= patience and epoch + 1 < epochs:
            history.stopped_early = True
            if feedback is not None:
                feedback.info(f"{label}no improvement for {patience} epochs: stopped.")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
        if feedback is not None:
            feedback.info(f"{label}kept epoch {history.best_epoch} (validation RMSE "
                          f"{history.validation[history.best_epoch]:.5f}; untrained {history.validation[0]:.5f}).")
    history.seconds = time.perf_counter() - start
    history.samples_per_second = samples / max(history.seconds, 1e-9)
    model.eval()
    return history


def _validate(model: Any, validate: Callable[[], float]) -> float:
    """The validation score of the model in evaluation mode (a :class:`.validation.Score` keeps its parts);
    a non-finite score counts as infinitely bad."""
    torch = import_torch()
    model.eval()
    with torch.no_grad():
        value = validate()
    return value if math.isfinite(float(value)) else float("inf")


def copy_state(model: Any) -> dict[str, Any]:
    """A detached copy of ``model``'s state dict (to restore it later with ``load_state_dict``)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def restore_start_below_min_gain(model: Any, start: dict[str, Any], history: "History", min_gain: float,
                                 feedback: Feedback | None, name: str) -> None:
    """After training: when the kept epoch beat the noise but not ``min_gain`` (:func:`.validation.meets_min_gain`
    against the untrained epoch 0), load the untrained ``start`` back into ``model`` and record epoch 0 as kept.
    Checked after training, not per epoch (train()'s ``min_gain``), so early stopping still follows the
    noise-guarded best epoch. ``name`` begins the message, e.g. "DCSTFN keeps its untrained start"."""
    from .validation import meets_min_gain

    if not history.validation or not history.best_epoch:
        return
    kept, untrained = history.validation[history.best_epoch], history.validation[0]
    if meets_min_gain(kept, untrained, min_gain):
        return
    if feedback is not None:
        feedback.info(f"{name}: epoch {history.best_epoch} gained {100 * (1 - kept / untrained):.1f} % on the "
                      f"held-out dates, less than MIN_GAIN ({100 * min_gain:.0f} %).")
    model.load_state_dict(start)
    history.best_epoch = 0
