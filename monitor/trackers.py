"""What the experiment trackers (TensorBoard, Weights & Biases) share: the packages they need and
the names their scalars get, so the two views of a run read the same.

Both packages are optional: ``check_tracker_packages`` runs right after the options are parsed
(before any data or model is set up) and turns a flag whose package is missing into one line
naming the pip package. The backends themselves (``tensorboard_backend``, ``wandb_backend``)
are imported only by runs that use them.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from monitor.base import LogRecord
from util.errors import UserError

if TYPE_CHECKING:
    from options import Options

# flag -> (module imported, package to pip install)
TRACKER_PACKAGES: dict[str, tuple[str, str]] = {
    "use_tensorboard": ("tensorboard", "tensorboard"),
    "use_wandb": ("wandb", "wandb"),
}


def check_tracker_packages(opt: Options) -> None:
    """A one-line ``UserError`` for a tracker flag whose package is not installed."""
    for flag, (module, package) in TRACKER_PACKAGES.items():
        if not opt.get(flag) or importlib.util.find_spec(module) is not None:
            continue
        # --continue_train takes the flag from the run's opt.yaml: say where it came from
        origin = (
            "" if flag in opt.explicit else f" (from the run's opt.yaml; a --config with '{flag}: false' turns it off)"
        )
        raise UserError(f"--{flag}{origin} needs the {package} package: pip install {package}")


def record_scalars(record: LogRecord) -> dict[str, float]:
    """The scalars of one logged step, by tracker name: ``loss/<name>``, ``lr``,
    ``time/compute_per_iter`` and ``time/data_per_iter`` (seconds, as in loss_log.txt)."""
    scalars = {f"loss/{name}": float(value) for name, value in record.losses.items()}
    scalars["lr"] = float(record.lr)
    scalars["time/compute_per_iter"] = float(record.time_per_iter)
    scalars["time/data_per_iter"] = float(record.data_time)
    return scalars


def metric_scalars(metrics: dict[str, float]) -> dict[str, float]:
    """``--eval_freq`` metrics (``fid_AtoB``, ...) as ``metrics/<key>``."""
    return {f"metrics/{key}": float(value) for key, value in metrics.items()}
