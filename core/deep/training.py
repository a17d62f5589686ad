"""Training loop shared by the deep methods: seeding, validation split, epochs with progress and cancel."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..device import import_torch
from ..errors import CancelledError
from ..feedback import Feedback


def seed_everything(seed: int) -> None:
    """Make a training run repeatable on the same device (torch and numpy generators)."""
    import random

    import numpy as np

    torch = import_torch()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class History:
    """Loss per epoch (mean over the epoch's batches) and validation loss."""

    train: list[float] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_second: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"train": self.train, "validation": self.validation, "seconds": round(self.seconds, 3),
                "samples_per_second": round(self.samples_per_second, 2)}


def train(
    model: Any, optimizer: Any, inputs: Any, targets: Any, epochs: int, batch: int,
    loss_fn: Callable[[Any, Any], Any], validation: float = 0.1, seed: int = 0, device: Any = "cpu",
    feedback: Feedback | None = None, label: str = "",
) -> History:
    """Mini-batch training on tensors ``inputs`` [N, ...] and ``targets`` [N, ...] (kept on the CPU, moved to
    ``device`` batch by batch). A fixed ``validation`` share of the samples (chosen with ``seed``) is held out and
    its loss reported per epoch. Progress is reported per batch, cancel checked per batch."""
    torch = import_torch()
    n = inputs.shape[0]
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    n_val = int(round(n * validation)) if n > 1 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    history = History()
    start = time.perf_counter()
    batches_per_epoch = max(1, math.ceil(len(train_idx) / batch))
    for epoch in range(epochs):
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        total, count = 0.0, 0
        for b in range(batches_per_epoch):
            if feedback is not None and feedback.is_canceled():
                raise CancelledError()
            idx = perm[b * batch:(b + 1) * batch]
            x, y = inputs[idx].to(device), targets[idx].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            if feedback is not None:
                feedback.set_progress(100.0 * (epoch * batches_per_epoch + b + 1) / (epochs * batches_per_epoch))
        history.train.append(total / max(count, 1))
        if n_val:
            model.eval()
            with torch.no_grad():
                losses = [float(loss_fn(model(inputs[val_idx[i:i + batch]].to(device)),
                                        targets[val_idx[i:i + batch]].to(device))) * len(val_idx[i:i + batch])
                          for i in range(0, n_val, batch)]
            history.validation.append(sum(losses) / n_val)
        if feedback is not None:
            val = f", validation {history.validation[-1]:.3e}" if n_val else ""
            feedback.info(f"{label}epoch {epoch + 1}/{epochs}: loss {history.train[-1]:.3e}{val}")
    history.seconds = time.perf_counter() - start
    history.samples_per_second = epochs * len(train_idx) / max(history.seconds, 1e-9)
    model.eval()
    return history
