"""Parsing: ``parse_options(argv, is_train) -> Options``, read-only.

Precedence, lowest first: code defaults < model/dataset ``modify_options`` hooks <
(test.py only) the architecture of the trained run, read from ``<checkpoints_dir>/<name>/opt.yaml``
< ``--config FILE.yaml`` < command-line flags. Unknown YAML keys are errors that list the
valid keys. Which options a trained run passes on (to test.py, to a resumed run) is read from
each flag's scope, declared with the flag in ``options.schema``.
"""

from __future__ import annotations

import argparse
import glob
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from data import DATASETS
from models import MODELS
from options.legacy import classic_flag_problem
from options.resolve import format_suffix, resolve, test_load_size
from options.schema import add_base_options, add_test_options, add_train_options
from util.errors import UserError
from util.fileio import atomic_write_text
from util.flags import ARCHITECTURE, INVOCATION, TEST_TIME


class Options:
    """Read-only options. Attribute access like a Namespace; ``replace`` returns a copy."""

    __slots__ = ("_values", "_defaults", "_explicit", "_scopes")

    def __init__(
        self,
        values: dict[str, Any],
        defaults: dict[str, Any] | None = None,
        explicit: Iterable[str] = (),
        scopes: dict[str, frozenset[str]] | None = None,
    ) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_defaults", dict(defaults or {}))
        object.__setattr__(self, "_explicit", frozenset(explicit))
        object.__setattr__(self, "_scopes", dict(scopes or {}))

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
        return Options({**self._values, **changes}, self._defaults, self._explicit, self._scopes)

    def keys_in(self, scope: str) -> list[str]:
        """The options declared with ``scope`` (``options.schema``: architecture, fixed, ...)."""
        return sorted(key for key, scopes in self._scopes.items() if scope in scopes)

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


_PEEKED = ("config", "model", "dataset_mode", "name", "checkpoints_dir", "dataroot", "suffix")


def _peek(argv: Sequence[str], prog: str | None) -> argparse.Namespace:
    """The few flags that decide which parser to build. A flag without its value already fails
    here: with the same program name and short usage line as the full parser's errors (argparse's
    own would be ``sys.argv[0]`` and a usage listing only these flags)."""
    peek = argparse.ArgumentParser(
        prog=prog, usage="%(prog)s [options]; %(prog)s --help lists them", add_help=False, allow_abbrev=False
    )
    for key in _PEEKED:
        peek.add_argument(f"--{key}", default=argparse.SUPPRESS)
    known, _ = peek.parse_known_args(argv)
    return known


def _load_yaml(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    config = Path(path)
    if not config.is_file():
        parser.error(f"--config {path}: no such file")
    try:
        text = config.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:  # found by tests/test_fuzz.py, as the two cases below
        parser.error(f"--config {path} is not UTF-8 text ({e.reason} at byte {e.start})")
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        parser.error(f"--config {path} is not valid YAML: {str(e).splitlines()[0]}")
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        parser.error(f"--config {path} is nested too deeply to be a config of options")
    if not isinstance(values, dict):
        parser.error(f"--config {path} must hold a mapping of option: value")
    if non_text := [key for key in values if not isinstance(key, str)]:  # `1: x`, `~: x`, `[a]: x`
        parser.error(f"--config {path}: every key must be an option name, got {non_text[0]!r}")
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
    """Type-check one YAML value against its argparse action (a list for a flag taking several
    values, e.g. ``style_image: [a.jpg, b.jpg]``; a single value there is a list of one)."""
    if action.nargs in ("+", "*") and value is not None:
        items = value if isinstance(value, list) else [value]
        if action.nargs == "+" and not items:
            parser.error(f"config key '{key}' needs at least one value")
        return [_coerce_one(parser, action, key, item) for item in items]
    return _coerce_one(parser, action, key, value)


def _coerce_one(parser: argparse.ArgumentParser, action: argparse.Action, key: str, value: Any) -> Any:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            parser.error(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if value is None:  # `key:` or `key: null`: only for the options that default to nothing
        if parser.get_default(action.dest) is not None:  # (`crop_size: null` was a TypeError, tests/test_fuzz.py)
            parser.error(f"config key '{key}' needs a value (the default is {parser.get_default(action.dest)!r})")
        return None
    kind = action.type
    if kind in (None, str) and isinstance(value, (list, dict)):  # str() would make `name: [a]` the name "['a']"
        parser.error(f"config key '{key}' takes one value, got {type(value).__name__} {value!r}")
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


def default_name(dataroot: str, model: str) -> str:
    """The run name when --name is not given: ``<dataroot folder>_<model>``."""
    return f"{Path(str(dataroot)).resolve().name}_{model}"


def _cli_keys(argv: Sequence[str], is_train: bool, model: str, dataset_mode: str | None, prog: str | None) -> set[str]:
    """The options the command line sets: ``argv`` parsed with every default suppressed."""
    probe, _ = build_parser(is_train, model, dataset_mode, prog)
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    # a hook's set_defaults also lands in the parser's own defaults, which argparse adds to the
    # result: without this, every value a model or dataset hook sets would count as given
    probe._defaults.clear()
    return set(vars(probe.parse_args(argv)))


def _suffixed_name(
    argv: Sequence[str],
    yaml_values: dict,
    is_train: bool,
    model: str,
    dataset_mode: str | None,
    prog: str | None,
    find_run: bool,
) -> str | None:
    """``<name>_<--suffix formatted>``, as the reference names a run, the fields taken from this
    command's own options (code defaults, model/dataset hooks, --config, command line). None
    without a --name or --dataroot (resolve reports that).

    ``find_run`` (test.py, --continue_train): when no run has that name, the run whose opt.yaml
    records the same --suffix and whose name that suffix gives with its own options, except the
    ones this command sets, so that ``test.py --name exp --suffix {netG}`` finds the run trained
    with ``--netG unet_256`` without repeating the flag (test.py takes the architecture from the run)."""
    parser, _ = build_parser(is_train, model, dataset_mode, prog)
    dests = _dests(parser)
    parser.set_defaults(**{k: _coerce(parser, dests[k], k, v) for k, v in yaml_values.items() if k in dests})
    own = vars(parser.parse_args(argv))
    if not own.get("name") and not own.get("dataroot"):
        return None
    base, suffix = own.get("name") or default_name(own["dataroot"], model), own["suffix"]
    other = set(_dests(build_parser(not is_train, model, dataset_mode, prog)[0])) - set(dests)
    try:
        name = f"{base}_{format_suffix(suffix, {**own, 'name': base}, other)}"
    except UserError as e:
        parser.error(str(e))
    root = Path(own["checkpoints_dir"])
    if not find_run or (root / name / "opt.yaml").is_file():
        return name
    given = _cli_keys(argv, is_train, model, dataset_mode, prog) | set(yaml_values)
    matches = []
    for run_yaml in sorted(root.glob(f"{glob.escape(base)}_*/opt.yaml")):
        try:
            saved = yaml.safe_load(run_yaml.read_text(encoding="utf-8")) or {}
            fields = {**own, **{k: v for k, v in saved.items() if k not in given}, "name": base}
            if saved.get("suffix") == suffix and f"{base}_{suffix.format(**fields)}" == run_yaml.parent.name:
                matches.append(run_yaml.parent.name)
        except (yaml.YAMLError, AttributeError, KeyError, IndexError, ValueError, TypeError):
            continue  # not a run of this suffix
    if len(matches) > 1:
        parser.error(f"--suffix {suffix!r}: several runs match ({', '.join(matches)}); give the fields' values")
    return matches[0] if matches else name


def _saved_run(peeked: argparse.Namespace, yaml_values: dict, model_hint: str, name: str | None) -> dict[str, Any]:
    """Options of an earlier run from ``<checkpoints_dir>/<name>/opt.yaml`` (``name``: the run's
    name when --suffix made it); empty when the file cannot be found or read."""
    checkpoints_dir = getattr(peeked, "checkpoints_dir", None) or yaml_values.get("checkpoints_dir", "./checkpoints")
    name = name or getattr(peeked, "name", None) or yaml_values.get("name")
    if not name:
        dataroot = getattr(peeked, "dataroot", None) or yaml_values.get("dataroot")
        if not dataroot:
            return {}
        name = default_name(dataroot, model_hint)
    run_yaml = Path(checkpoints_dir) / str(name) / "opt.yaml"
    if not run_yaml.is_file():
        return {}
    try:
        saved = yaml.safe_load(run_yaml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {}
    return saved if isinstance(saved, dict) else {}


def _scopes(parser: argparse.ArgumentParser) -> dict[str, frozenset[str]]:
    return {a.dest: getattr(a, "scopes", frozenset()) for a in _dests(parser).values()}


def parse_options(argv: Sequence[str] | None = None, is_train: bool = True, prog: str | None = None) -> Options:
    """Parse ``argv`` (default ``sys.argv[1:]``) into resolved, read-only ``Options``.

    Bad values end the program like argparse does: a usage line, one error line, exit code 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    peeked = _peek(argv, prog)
    base = _base_parser(is_train, prog)  # for YAML errors and the default model
    if (problem := classic_flag_problem(argv)) is not None:
        base.error(problem)
    yaml_values: dict[str, Any] = {}
    if getattr(peeked, "config", None):
        yaml_values = _load_yaml(peeked.config, base)
        # the keys that choose the parser are read before the others are checked: check them now
        # (``dataset_mode: [a]`` was a TypeError, found by tests/test_fuzz.py)
        peek_dests = _dests(base)
        for key in _PEEKED:
            if key in yaml_values:
                yaml_values[key] = _coerce(base, peek_dests[key], key, yaml_values[key])

    # test.py takes the trained run's architecture; --continue_train all of the run's options but
    # this invocation's own (the flags' scopes say which, options.schema)
    default_model = base.get_default("model")
    model_hint = getattr(peeked, "model", None) or yaml_values.get("model") or default_model
    resuming = is_train and ("--continue_train" in argv or yaml_values.get("continue_train") is True)
    dataset_mode = getattr(peeked, "dataset_mode", None) or yaml_values.get("dataset_mode")
    suffix = getattr(peeked, "suffix", None) or yaml_values.get("suffix")
    find_run = resuming or not is_train
    run_name = (
        _suffixed_name(argv, yaml_values, is_train, str(model_hint), dataset_mode, prog, find_run) if suffix else None
    )
    saved = _saved_run(peeked, yaml_values, model_hint, run_name) if resuming or not is_train else {}
    model = getattr(peeked, "model", None) or yaml_values.get("model") or saved.get("model") or default_model
    parser, dataset_mode = build_parser(is_train, str(model), dataset_mode, prog)
    dests = _dests(parser)
    hook_defaults = {k: parser.get_default(k) for k in dests}
    scopes = _scopes(parser)
    if is_train:
        run_values = {k: v for k, v in saved.items() if k in dests and INVOCATION not in scopes[k]}
    else:
        run_values = {k: v for k, v in saved.items() if k in dests and ARCHITECTURE in scopes[k]}

    # YAML keys must be options of train.py or test.py (one config file serves both).
    other, _ = build_parser(not is_train, str(model), dataset_mode, prog)
    known = set(dests) | set(_dests(other))
    unknown = sorted(set(yaml_values) - known)
    if unknown:
        parser.error(f"unknown key(s) in {peeked.config}: {', '.join(unknown)}. Valid keys: {', '.join(sorted(known))}")
    yaml_applied = {k: _coerce(parser, dests[k], k, v) for k, v in yaml_values.items() if k in dests and k != "config"}

    parser.set_defaults(**run_values)
    parser.set_defaults(**yaml_applied)
    namespace = parser.parse_args(argv)

    # which keys the command line set: parse again with every default suppressed
    cli_keys = _cli_keys(argv, is_train, str(model), dataset_mode, prog)
    explicit = cli_keys | set(yaml_applied)

    values = vars(namespace)
    values["is_train"] = is_train
    if run_name is not None:
        values["name"] = run_name
    try:
        values = resolve(values, explicit, is_train)
    except UserError as e:
        parser.error(str(e))
    return Options(values, hook_defaults, explicit, scopes)


# ---- derived option sets ----------------------------------------------------------------------


def evaluation_options(opt: Options) -> Options:
    """The options test.py would use to evaluate this training run at its defaults (the
    ``--phase test`` split, all images, ``load_size = crop_size``), so that evaluating during
    training (``--eval_freq``) follows the same protocol as ``test.py --metrics`` afterwards."""
    parser, _ = build_parser(False, opt.model, opt.dataset_mode)
    scopes = _scopes(parser)
    values = {key: parser.get_default(key) for key in scopes}
    values.update({key: opt.get(key) for key in values if key in opt and TEST_TIME not in scopes[key]})
    load_size = test_load_size(opt.preprocess, opt.load_size, opt.crop_size)
    values.update(is_train=False, load_size=load_size, size_multiple=opt.size_multiple)  # the derived value too
    return Options(values, values, (), scopes)


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
