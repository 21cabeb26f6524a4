"""Options: ``parse_options(argv, is_train) -> Options``.

Precedence, lowest first: code defaults < model/dataset ``modify_options`` hooks <
(test.py only) the architecture of the trained run, read from ``<checkpoints_dir>/<name>/opt.yaml``
< ``--config FILE.yaml`` < command-line flags. Unknown YAML keys are errors that list the
valid keys. The result is read-only; ``opt.replace(key=value)`` returns a changed copy.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from data.dataroot import resolve_dataroot
from models.base_model import MODELS
from models.networks import generator_size_multiple
from options.schema import add_base_options, add_test_options, add_train_options, metric_names
from util.errors import UserError
from util.fileio import atomic_write_text

__all__ = [
    "ARCHITECTURE_KEYS",
    "FIXED_ON_RESUME",
    "NOT_RESUMED",
    "Options",
    "evaluation_options",
    "format_options",
    "gpu_ids",
    "metric_names",
    "parse_options",
    "save_options",
]

# What test.py takes from the trained run unless given explicitly: enough to rebuild the
# generators and feed them images like those they were trained on.
ARCHITECTURE_KEYS = (
    "model",
    "netG",
    "ngf",
    "norm",
    "no_dropout",
    "input_nc",
    "output_nc",
    "init_type",
    "direction",
    "crop_size",
    "load_size",
    "preprocess",
)


class Options:
    """Read-only options. Attribute access like a Namespace; ``replace`` returns a copy."""

    __slots__ = ("_values", "_defaults", "_explicit")

    def __init__(
        self, values: dict[str, Any], defaults: dict[str, Any] | None = None, explicit: Iterable[str] = ()
    ) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_defaults", dict(defaults or {}))
        object.__setattr__(self, "_explicit", frozenset(explicit))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no option '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("options are read-only; use opt.replace(...)")

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"Options({self._values!r})"

    def replace(self, **changes: Any) -> Options:
        return Options({**self._values, **changes}, self._defaults, self._explicit)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    @property
    def explicit(self) -> frozenset[str]:
        """Keys set by ``--config`` or on the command line."""
        return self._explicit

    @property
    def defaults(self) -> dict[str, Any]:
        """Values from code defaults and model/dataset hooks, before YAML and CLI."""
        return dict(self._defaults)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings), fit for YAML, JSON and checkpoints."""
        return {
            k: str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
            for k, v in self._values.items()
        }


def _peek(argv: Sequence[str]) -> argparse.Namespace:
    """The few flags that decide which parser to build."""
    peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--config", "--model", "--dataset_mode", "--name", "--checkpoints_dir", "--dataroot"):
        peek.add_argument(flag, default=argparse.SUPPRESS)
    known, _ = peek.parse_known_args(argv)
    return known


def _load_yaml(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    config = Path(path)
    if not config.is_file():
        parser.error(f"--config {path}: no such file")
    try:
        values = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        parser.error(f"--config {path} is not valid YAML: {str(e).splitlines()[0]}")
    if not isinstance(values, dict):
        parser.error(f"--config {path} must hold a mapping of option: value")
    return values


def _base_parser(is_train: bool, prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        # one short line above an error, so the error is what a user sees (--help lists all)
        usage="%(prog)s [options]; %(prog)s --help lists them",
        allow_abbrev=False,  # "--continue" must not silently mean --continue_train
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a model." if is_train else "Translate held-out images with a trained model.",
    )
    add_base_options(parser)
    add_train_options(parser) if is_train else add_test_options(parser)
    return parser


def build_parser(
    is_train: bool, model: str, dataset_mode: str | None, prog: str | None = None
) -> tuple[argparse.ArgumentParser, str]:
    """The parser for ``model`` with its hook applied, then the dataset hook. Returns the parser
    and the dataset mode in effect (``dataset_mode`` or the default after the model hook)."""
    from data.base_dataset import DATASETS

    parser = _base_parser(is_train, prog)
    if model in MODELS:
        try:
            MODELS.get(model).modify_options(parser, is_train)
        except UserError as e:
            parser.error(str(e))
    mode = dataset_mode if dataset_mode is not None else parser.get_default("dataset_mode")
    if mode in DATASETS:
        DATASETS.get(mode).modify_options(parser, is_train)
    return parser, mode


def _dests(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in ("help", argparse.SUPPRESS)}


def _coerce(parser: argparse.ArgumentParser, action: argparse.Action, key: str, value: Any) -> Any:
    """Type-check one YAML value against its argparse action."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            parser.error(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if value is None:
        return None
    kind = action.type
    if kind in (int, float) and isinstance(value, bool):
        parser.error(f"config key '{key}' must be a number, got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        parser.error(f"config key '{key}' must be an integer, got {value!r}")
    if kind is not None:
        try:
            value = kind(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
            parser.error(f"config key '{key}': {e}")
    if action.choices is not None and value not in action.choices:
        parser.error(
            f"config key '{key}': invalid choice {value!r} (choose from {', '.join(map(str, action.choices))})"
        )
    return value


# What a checkpoint is made of: the networks' architecture, which folders are the domains, the
# seed every random stream derives from, the kind of LR scheduler and the image pools' size. A
# resumed run cannot honour a change of these, so ``--continue_train`` refuses one (the rest,
# --lr, --beta1, the schedule's lengths, the loss weights, the data options, are honoured).
FIXED_ON_RESUME = (
    "model",
    "netG",
    "netD",
    "ngf",
    "ndf",
    "n_layers_D",
    "norm",
    "no_dropout",
    "init_type",
    "init_gain",
    "input_nc",
    "output_nc",
    "dataset_mode",
    "direction",
    "seed",
    "lr_policy",
    "pool_size",
)

# Per-invocation settings that a resumed run does not take from the run it resumes.
NOT_RESUMED = (
    "continue_train",
    "epoch",
    "dry_run",
    "config",
    "is_train",
    "max_iters",
    "gpu_ids",
    "num_threads",
    "verbose",
)


def _run_options(
    peeked: argparse.Namespace, yaml_values: dict, model_hint: str, keys: Iterable[str] | None
) -> dict[str, Any]:
    """Options of an earlier run from ``<checkpoints_dir>/<name>/opt.yaml`` (all of them, or
    only ``keys``); empty when the file cannot be found."""
    checkpoints_dir = getattr(peeked, "checkpoints_dir", None) or yaml_values.get("checkpoints_dir", "./checkpoints")
    name = getattr(peeked, "name", None) or yaml_values.get("name")
    if not name:
        dataroot = getattr(peeked, "dataroot", None) or yaml_values.get("dataroot")
        if not dataroot:
            return {}
        name = f"{Path(str(dataroot)).resolve().name}_{model_hint}"
    run_yaml = Path(checkpoints_dir) / str(name) / "opt.yaml"
    if not run_yaml.is_file():
        return {}
    try:
        saved = yaml.safe_load(run_yaml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {}
    if not isinstance(saved, dict):
        return {}
    if keys is None:
        return {k: v for k, v in saved.items() if k not in NOT_RESUMED}
    return {k: saved[k] for k in keys if k in saved}


def parse_options(argv: Sequence[str] | None = None, is_train: bool = True, prog: str | None = None) -> Options:
    """Parse ``argv`` (default ``sys.argv[1:]``) into resolved, read-only ``Options``.

    Bad values end the program like argparse does: a usage line, one error line, exit code 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    peeked = _peek(argv)
    yaml_values: dict[str, Any] = {}
    if getattr(peeked, "config", None):
        yaml_values = _load_yaml(peeked.config, _base_parser(is_train, prog))

    # test.py takes the trained run's architecture; --continue_train takes all of the run's options
    model_hint = getattr(peeked, "model", None) or yaml_values.get("model") or "cycle_gan"
    if not is_train:
        run_values = _run_options(peeked, yaml_values, model_hint, ARCHITECTURE_KEYS)
    elif "--continue_train" in argv or yaml_values.get("continue_train") is True:
        run_values = _run_options(peeked, yaml_values, model_hint, None)
    else:
        run_values = {}
    model = getattr(peeked, "model", None) or yaml_values.get("model") or run_values.get("model") or "cycle_gan"
    dataset_mode = getattr(peeked, "dataset_mode", None) or yaml_values.get("dataset_mode")
    parser, dataset_mode = build_parser(is_train, str(model), dataset_mode, prog)
    dests = _dests(parser)
    hook_defaults = {k: parser.get_default(k) for k in dests}

    # YAML keys must be options of train.py or test.py (one config file serves both).
    other, _ = build_parser(not is_train, str(model), dataset_mode, prog)
    known = set(dests) | set(_dests(other))
    unknown = sorted(set(yaml_values) - known)
    if unknown:
        parser.error(f"unknown key(s) in {peeked.config}: {', '.join(unknown)}. Valid keys: {', '.join(sorted(known))}")
    yaml_applied = {k: _coerce(parser, dests[k], k, v) for k, v in yaml_values.items() if k in dests and k != "config"}

    parser.set_defaults(**{k: v for k, v in run_values.items() if k in dests})
    parser.set_defaults(**yaml_applied)
    namespace = parser.parse_args(argv)

    # which keys the command line set: parse again with every default suppressed
    probe, _ = build_parser(is_train, str(model), dataset_mode, prog)
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    cli_keys = set(vars(probe.parse_args(argv)))
    explicit = cli_keys | set(yaml_applied)

    values = vars(namespace)
    values["is_train"] = is_train
    try:
        values = _resolve(values, explicit, is_train)
    except UserError as e:
        parser.error(str(e))
    return Options(values, hook_defaults, explicit)


def _resolve(values: dict[str, Any], explicit: set[str], is_train: bool) -> dict[str, Any]:
    """Derived values and cross-option checks."""
    if is_train and not MODELS.get(values["model"]).trainable:
        raise UserError(f"the '{values['model']}' model cannot be trained; use --model cycle_gan")
    if not values.get("dataroot"):
        raise UserError("--dataroot is required (a dataset folder, or set it in --config)")
    phase = values["phase"]
    if values["model"] == "test":
        expected = "the images to translate"
    elif is_train and values["dataset_mode"] != "unaligned":
        expected = f"the {values['dataset_mode']} dataset's {phase} images"
    else:
        expected = f"{phase}A/ and {phase}B/"
    values["dataroot"] = resolve_dataroot(values["dataroot"], expected)
    if not values.get("name"):
        values["name"] = f"{values['dataroot'].resolve().name}_{values['model']}"
    if values.get("seed") is None:
        values["seed"] = secrets.randbelow(2**31)
    gpu_ids(values["gpu_ids"])  # validate early
    if not is_train and "load_size" not in explicit:
        values["load_size"] = test_load_size(values["preprocess"], values["load_size"], values["crop_size"])
    if is_train and not values.get("display_env"):
        values["display_env"] = values["name"]
    minimum = dict.fromkeys(("batch_size", "load_size", "crop_size", "input_nc", "output_nc", "ngf", "ndf"), 1)
    minimum.update(num_threads=0)
    if is_train:
        minimum.update(dict.fromkeys(("print_freq", "save_latest_freq", "save_epoch_freq", "update_html_freq"), 1))
        minimum.update(dict.fromkeys(("n_epochs", "n_epochs_decay", "pool_size", "display_freq", "eval_freq"), 0))
        minimum.update(lr_decay_iters=1, max_iters=0, epoch_count=1)
    else:
        minimum.update(test_batch_size=1, num_test=1)
    for key, low in minimum.items():
        if values[key] < low:
            raise UserError(f"--{key} must be at least {low}, got {values[key]}")
    if (
        is_train
        and not values["continue_train"]
        and values["epoch_count"] > values["n_epochs"] + values["n_epochs_decay"]
    ):
        raise UserError(
            f"--epoch_count {values['epoch_count']} is past the last epoch, n_epochs + n_epochs_decay = "
            f"{values['n_epochs'] + values['n_epochs_decay']}"
        )
    if is_train:
        if not values["lr"] > 0:  # also refuses nan
            raise UserError(f"--lr must be positive, got {values['lr']}")
        if not 0 <= values["beta1"] < 1:
            raise UserError(f"--beta1 must be in [0, 1), got {values['beta1']}")
    elif not values["aspect_ratio"] > 0:
        raise UserError(f"--aspect_ratio must be positive, got {values['aspect_ratio']}")
    if values["n_layers_D"] < 1:
        raise UserError(f"--n_layers_D must be at least 1, got {values['n_layers_D']}")
    if is_train and values["netD"] != "pixel":
        # a PatchGAN's strided 4x4 convs leave 1 pixel for its last norm layer below this size
        layers = 3 if values["netD"] == "basic" else values["n_layers_D"]
        smallest = 3 * 2**layers
        side = smallest_training_side(values["preprocess"], values["load_size"], values["crop_size"])
        if side is not None and side < smallest:
            what = "--crop_size" if side == values["crop_size"] else "--load_size"
            raise UserError(
                f"--netD {values['netD']} needs training images of at least {smallest}x{smallest}: "
                f"--preprocess {values['preprocess']} gives sides down to {side} ({what} {side})"
            )
    if is_train and values["eval_freq"] > 0 and not values["metrics"]:
        raise UserError("--eval_freq needs --metrics, e.g. --metrics fid,kid")
    if (
        values["preprocess"] in ("resize_and_crop", "scale_width_and_crop")
        and values["crop_size"] > values["load_size"]
    ):
        raise UserError(f"--crop_size {values['crop_size']} is larger than --load_size {values['load_size']}")
    multiple = generator_size_multiple(values["netG"])
    if values["preprocess"] in ("resize_and_crop", "crop", "scale_width_and_crop") and values["crop_size"] % multiple:
        raise UserError(f"--netG {values['netG']} needs --crop_size divisible by {multiple}, got {values['crop_size']}")
    return values


def smallest_training_side(preprocess: str, load_size: int, crop_size: int) -> int | None:
    """The shortest side a training image can have after ``preprocess``; None when it depends on
    the files (``none``). scale_width makes the width ``load_size`` and keeps the height at least
    ``crop_size``."""
    if preprocess == "none":
        return None
    if preprocess == "scale_width":
        return min(load_size, crop_size)
    return crop_size


# Options an evaluation during training takes from test.py's defaults rather than from the run:
# the held-out split, every image of it, no random-crop margin, no loader worker processes.
TEST_TIME_KEYS = ("phase", "max_dataset_size", "load_size", "num_threads", "epoch", "config", "dry_run")


def evaluation_options(opt: Options) -> Options:
    """The options test.py would use to evaluate this training run at its defaults (the
    ``--phase test`` split, all images, ``load_size = crop_size``), so that evaluating during
    training (``--eval_freq``) follows the same protocol as ``test.py --metrics`` afterwards."""
    parser, _ = build_parser(False, opt.model, opt.dataset_mode)
    values = {key: parser.get_default(key) for key in _dests(parser)}
    values.update({key: opt.get(key) for key in values if key in opt and key not in TEST_TIME_KEYS})
    values.update(is_train=False, load_size=test_load_size(opt.preprocess, opt.load_size, opt.crop_size))
    return Options(values, values)


def test_load_size(preprocess: str, load_size: int, crop_size: int) -> int:
    """``--load_size`` at test time unless given: ``crop_size`` for resize_and_crop (the whole
    image, resized to the size the generator was trained on, as the reference does); the
    training ``load_size`` for the scale_width modes, so test images keep the training scale."""
    return crop_size if preprocess == "resize_and_crop" else load_size


def gpu_ids(text: str) -> list[int]:
    """``--gpu_ids`` as a list; "-1" (or any negative id) means the CPU."""
    try:
        ids = [int(x) for x in str(text).replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise UserError(f"--gpu_ids must be comma-separated integers, got '{text}'") from None
    return [i for i in ids if i >= 0]


def format_options(opt: Options) -> str:
    """The reference's options table: one line per option, non-defaults marked."""
    lines = ["----------------- Options ---------------"]
    defaults = opt.defaults
    for key, value in sorted(opt.to_dict().items()):
        note = ""
        if key in defaults and defaults[key] != value and not (isinstance(value, str) and str(defaults[key]) == value):
            note = f"\t[default: {defaults[key]}]"
        lines.append(f"{key:>25}: {value!s:<30}{note}")
    lines.append("----------------- End -------------------")
    return "\n".join(lines)


def save_options(opt: Options, path: Path) -> Path:
    return atomic_write_text(path, yaml.safe_dump(opt.to_dict(), sort_keys=True))
