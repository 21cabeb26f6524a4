"""Learning-rate policies, stepped once per epoch.

``linear``: constant for ``n_epochs``, then linear decay over ``n_epochs_decay`` epochs (the
reference's schedule: during epoch e the factor is 1 - max(0, e - n_epochs) / (n_epochs_decay + 1)).
``step``: x0.1 every ``lr_decay_iters`` epochs (the reference's name, in epochs).
``plateau``: x0.2 when the monitored quantity (the epoch's mean cycle loss for CycleGAN) has
not improved by 1% for 5 epochs; the reference fed it a constant 0 instead.
``cosine``: half a cosine from lr to 0 over the whole run (n_epochs + n_epochs_decay), held at
its end, so it never climbs back as the reference's did after ``n_epochs``.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau, StepLR

LR_POLICIES = ("linear", "step", "plateau", "cosine")


def build_scheduler(
    optimizer: Optimizer,
    policy: str,
    n_epochs: int,
    n_epochs_decay: int,
    epoch_count: int = 1,
    lr_decay_iters: int = 50,
) -> LRScheduler | ReduceLROnPlateau:
    if policy == "linear":

        def linear(steps: int) -> float:
            epoch = steps + epoch_count  # the 1-based epoch about to run
            return max(0.0, 1.0 - max(0, epoch - n_epochs) / float(n_epochs_decay + 1))

        return LambdaLR(optimizer, linear)
    if policy == "step":
        return StepLR(optimizer, step_size=lr_decay_iters, gamma=0.1)
    if policy == "plateau":
        for group in optimizer.param_groups:  # as LRScheduler does: the base lr, kept in the optimizer's state
            group.setdefault("initial_lr", group["lr"])
        return ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    if policy == "cosine":
        total = max(1, n_epochs + n_epochs_decay)

        def cosine(steps: int) -> float:
            done = min(steps + epoch_count - 1, total)  # epochs completed before this one
            return 0.5 * (1.0 + math.cos(math.pi * done / total))

        return LambdaLR(optimizer, cosine)
    raise ValueError(f"unknown lr_policy '{policy}' (choose from {', '.join(LR_POLICIES)})")


def retarget(scheduler: LRScheduler | ReduceLROnPlateau, optimizer: Optimizer, lr: float, lr_decay_iters: int) -> None:
    """After loading a checkpoint's optimizer and scheduler state: continue with this run's
    ``--lr`` (and schedule) instead of the stored one, at the same point of the schedule.

    ``linear``/``cosine`` recompute the current lr from their factor (built from this run's
    n_epochs/n_epochs_decay) exactly as torch's LambdaLR does, so an unchanged schedule gives the
    same bits; ``step`` takes ``lr_decay_iters``; ``plateau`` keeps its reductions, scaled to the
    new base lr. Nothing changes when nothing was changed.
    """
    if isinstance(scheduler, LambdaLR):
        scheduler.base_lrs = [lr for _ in optimizer.param_groups]
        for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
            group["initial_lr"] = lr
            group["lr"] = lr * factor(scheduler.last_epoch)
    elif isinstance(scheduler, StepLR):
        if scheduler.step_size == lr_decay_iters and all(base == lr for base in scheduler.base_lrs):
            return
        scheduler.step_size = lr_decay_iters
        scheduler.base_lrs = [lr for _ in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["initial_lr"] = lr
            group["lr"] = lr * scheduler.gamma ** (scheduler.last_epoch // lr_decay_iters)
    elif isinstance(scheduler, ReduceLROnPlateau):
        for group in optimizer.param_groups:
            base = group.setdefault("initial_lr", lr)  # absent: a checkpoint older than this rule
            if base != lr:
                group["lr"] *= lr / base
                group["initial_lr"] = lr
    else:
        raise TypeError(f"unknown scheduler {type(scheduler).__name__}")
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
