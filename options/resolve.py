"""Derived values and cross-option checks, asking the registries' specs for component facts
(a generator's size multiple, a discriminator's minimum input, whether a model or dataset
trains), so no component is named here. Every failed check is a one-line ``UserError``."""

from __future__ import annotations

import secrets
from typing import Any

import torch

from data import DATASETS
from data.dataroot import resolve_dataroot
from models import MODELS
from models.networks import DISCRIMINATORS, GENERATORS
from util.device import default_test_batch_size
from util.errors import UserError

CROPPING = ("resize_and_crop", "crop", "scale_width_and_crop")  # modes whose output is crop_size square


def resolve(values: dict[str, Any], explicit: set[str], is_train: bool) -> dict[str, Any]:
    """Fill in derived values (dataroot, name, seed, the model's own (``resolve_options``), display
    env, test-time load size, the generator's size multiple) and check every value and combination."""
    check_trainable(values, is_train)
    if not values.get("dataroot"):
        raise UserError("--dataroot is required (a dataset folder, or set it in --config)")
    layout = DATASETS.spec(values["dataset_mode"]).expected_layout(values["phase"])
    values["dataroot"] = resolve_dataroot(values["dataroot"], layout)
    if not values.get("name"):
        values["name"] = f"{values['dataroot'].resolve().name}_{values['model']}"
    if values.get("seed") is None:
        values["seed"] = secrets.randbelow(2**31)
    values["epoch"] = checkpoint_tag(values["epoch"], values["load_iter"], "epoch" in explicit)
    MODELS.get(values["model"]).resolve_options(values, is_train)  # its own derived values
    DATASETS.get(values["dataset_mode"]).resolve_options(values, is_train)  # and the data's
    gpus = gpu_ids(values["gpu_ids"])  # validate early
    if is_train:
        check_processes(values["nproc_per_node"], values["gpu_ids"], len(gpus))
    if not is_train and values.get("test_batch_size") is None:
        values["test_batch_size"] = default_test_batch_size("cuda" if gpus and torch.cuda.is_available() else "cpu")
    if not is_train and "load_size" not in explicit:
        values["load_size"] = test_load_size(values["preprocess"], values["load_size"], values["crop_size"])
    if is_train and not values.get("display_env"):
        values["display_env"] = values["name"]
    values["size_multiple"] = GENERATORS.spec(values["netG"]).size_multiple  # for data: uncropped sides
    check_ranges(values, is_train)
    check_upsample(values["netG"], values["upsample"])
    check_sizes(values, is_train)
    if is_train and values["eval_freq"] > 0 and not values["metrics"]:
        raise UserError("--eval_freq needs --metrics, e.g. --metrics fid,kid")
    return values


def checkpoint_tag(epoch: str, load_iter: int, epoch_given: bool) -> str:
    """The checkpoint to load: ``iter_<load_iter>`` when ``--load_iter`` is above 0 (the
    reference's flag), else ``--epoch``. Both given and naming different checkpoints: an error
    (``--epoch latest``, the default, gives way as in the reference)."""
    if load_iter < 0:
        raise UserError(f"--load_iter must be 0 (use --epoch) or a positive iteration, got {load_iter}")
    if load_iter == 0:
        return epoch
    tag = f"iter_{load_iter}"
    if epoch_given and str(epoch) not in ("latest", tag):
        raise UserError(f"--epoch {epoch} and --load_iter {load_iter} name different checkpoints: give one of them")
    return tag


def format_suffix(suffix: str, fields: dict[str, Any], other_script_fields: set[str]) -> str:
    """``--suffix`` formatted with the options ``fields`` (``str.format``, as the reference does).
    A field that is no option, a positional field or a bad format is a one-line error naming the
    valid fields; a result holding a path separator too."""
    valid = ", ".join(sorted(fields))
    try:
        text = suffix.format(**fields)
    except KeyError as e:
        field = e.args[0]
        other = field in other_script_fields
        where = " (an option of the other script only: name the run with --name instead)" if other else ""
        raise UserError(f"--suffix {suffix!r}: unknown field {{{field}}}{where}; valid fields: {valid}") from None
    except (IndexError, ValueError, AttributeError, TypeError) as e:
        raise UserError(
            f"--suffix {suffix!r} is not a valid format ({e}); use named fields, e.g. {{model}}; valid fields: {valid}"
        ) from None
    if "/" in text or "\\" in text or text in (".", ".."):
        raise UserError(f"--suffix {suffix!r} gives {text!r}, which is not a folder name")
    return text


def check_processes(nproc: int, text: str, gpus: int) -> None:
    """``--nproc_per_node`` against ``--gpu_ids``: one process per listed GPU, or CPU processes."""
    if nproc < 1:
        raise UserError(f"--nproc_per_node must be at least 1, got {nproc}")
    if gpus and nproc > 1 and nproc != gpus:
        raise UserError(
            f"--nproc_per_node {nproc} with --gpu_ids {text}: one process per GPU, so list {nproc} GPU ids "
            f"(e.g. --gpu_ids {','.join(map(str, range(nproc)))}), or --gpu_ids -1 for {nproc} CPU processes"
        )


def check_trainable(values: dict[str, Any], is_train: bool) -> None:
    if not is_train:
        return
    for registry, key in ((MODELS, "model"), (DATASETS, "dataset_mode")):
        if not registry.spec(values[key]).trainable:
            usable = ", ".join(name for name in registry.names() if registry.spec(name).trainable)
            raise UserError(f"--{key} {values[key]} is for test.py only; train.py takes {usable}")


# The smallest value of each count and frequency (n_layers_D: a PatchGAN has at least one layer).
MINIMUM = dict.fromkeys(("batch_size", "load_size", "crop_size", "input_nc", "output_nc", "ngf", "ndf"), 1)
MINIMUM.update(num_threads=0, n_layers_D=1)
TRAIN_MINIMUM = dict.fromkeys(("print_freq", "save_latest_freq", "save_epoch_freq", "update_html_freq"), 1)
TRAIN_MINIMUM.update(dict.fromkeys(("n_epochs", "n_epochs_decay", "pool_size", "display_freq", "eval_freq"), 0))
TRAIN_MINIMUM.update(lr_decay_iters=1, max_iters=0, epoch_count=1)
TEST_MINIMUM = {"test_batch_size": 1, "num_test": 1}


def check_ranges(values: dict[str, Any], is_train: bool) -> None:
    for key, low in {**MINIMUM, **(TRAIN_MINIMUM if is_train else TEST_MINIMUM)}.items():
        if values[key] < low:
            raise UserError(f"--{key} must be at least {low}, got {values[key]}")
    if is_train:
        last = values["n_epochs"] + values["n_epochs_decay"]
        if not values["continue_train"] and values["epoch_count"] > last:
            raise UserError(
                f"--epoch_count {values['epoch_count']} is past the last epoch, n_epochs + n_epochs_decay = {last}"
            )
        if not values["lr"] > 0:  # also refuses nan
            raise UserError(f"--lr must be positive, got {values['lr']}")
        if not 0 <= values["beta1"] < 1:
            raise UserError(f"--beta1 must be in [0, 1), got {values['beta1']}")
        if not values["dist_timeout"] > 0:
            raise UserError(f"--dist_timeout must be a positive number of seconds, got {values['dist_timeout']}")
        if not 0 <= values["ema_decay"] < 1:  # also refuses nan
            raise UserError(f"--ema_decay must be in [0, 1) (0: off; typical: 0.999), got {values['ema_decay']}")
    elif not values["aspect_ratio"] > 0:
        raise UserError(f"--aspect_ratio must be positive, got {values['aspect_ratio']}")


def check_upsample(netG: str, upsample: str) -> None:
    """``--upsample`` other than the reference's transposed convs, for generators that take it."""
    if upsample != "transpose" and not GENERATORS.spec(netG).resize_conv:
        able = ", ".join(name for name in GENERATORS.names() if GENERATORS.spec(name).resize_conv)
        raise UserError(f"--upsample {upsample}: --netG {netG} has one way to upsample; these take it: {able}")


def check_sizes(values: dict[str, Any], is_train: bool) -> None:
    """Crops against the load size, the generator's size multiple and the discriminator's
    minimum input."""
    preprocess, crop, load = values["preprocess"], values["crop_size"], values["load_size"]
    if preprocess in ("resize_and_crop", "scale_width_and_crop") and crop > load:
        raise UserError(f"--crop_size {crop} is larger than --load_size {load}")
    multiple = values["size_multiple"]
    if preprocess in CROPPING and crop % multiple:
        raise UserError(f"--netG {values['netG']} needs --crop_size divisible by {multiple}, got {crop}")
    if not is_train:
        return
    smallest = DISCRIMINATORS.spec(values["netD"]).min_input(values["n_layers_D"])
    side = smallest_training_side(preprocess, load, crop)
    if side is not None and side < smallest:
        what = "--crop_size" if side == crop else "--load_size"
        raise UserError(
            f"--netD {values['netD']} needs training images of at least {smallest}x{smallest}: "
            f"--preprocess {preprocess} gives sides down to {side} ({what} {side})"
        )


def smallest_training_side(preprocess: str, load_size: int, crop_size: int) -> int | None:
    """The shortest side a training image can have after ``preprocess``; None when it depends on
    the files (``none``). scale_width makes the width ``load_size`` and keeps the height at least
    ``crop_size``."""
    if preprocess == "none":
        return None
    if preprocess == "scale_width":
        return min(load_size, crop_size)
    return crop_size


def test_load_size(preprocess: str, load_size: int, crop_size: int) -> int:
    """``--load_size`` at test time unless given: ``crop_size`` for resize_and_crop (the whole
    image, resized to the size the generator was trained on, as the reference does); the
    training ``load_size`` otherwise, so scale_width test images keep the training scale."""
    return crop_size if preprocess == "resize_and_crop" else load_size


def gpu_ids(text: str) -> list[int]:
    """``--gpu_ids`` as a list; "-1" (or any negative id) means the CPU."""
    try:
        ids = [int(x) for x in str(text).replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise UserError(f"--gpu_ids must be comma-separated integers, got '{text}'") from None
    return [i for i in ids if i >= 0]
