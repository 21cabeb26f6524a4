"""Every flag of the reference's train.py and test.py (junyanz/pytorch-CycleGAN-and-pix2pix, its
options/*.py and the models' option hooks) is accepted here with the reference's meaning, and the
names it used before its 2019 renaming get a one-line error naming today's flag.

Each row: the flag, a value a user would pass, and the option value it must produce here (values
chosen to differ from our defaults, so a flag that is accepted but ignored fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

from options import parse_options
from options.legacy import CLASSIC_FLAGS

# (flag, value or None for a switch, attribute, expected value)
BASE = [
    ("--name", "ref_run", "name", "ref_run"),
    ("--gpu_ids", "-1", "gpu_ids", "-1"),
    ("--checkpoints_dir", "ckpts", "checkpoints_dir", "ckpts"),
    ("--input_nc", "1", "input_nc", 1),
    ("--output_nc", "1", "output_nc", 1),
    ("--ngf", "16", "ngf", 16),
    ("--ndf", "16", "ndf", 16),
    ("--netD", "n_layers", "netD", "n_layers"),
    ("--netG", "unet_128", "netG", "unet_128"),
    ("--n_layers_D", "2", "n_layers_D", 2),
    ("--norm", "batch", "norm", "batch"),
    ("--init_type", "xavier", "init_type", "xavier"),
    ("--init_gain", "0.05", "init_gain", 0.05),
    ("--no_dropout", None, "no_dropout", True),
    ("--dataset_mode", "single", "dataset_mode", "single"),
    ("--direction", "BtoA", "direction", "BtoA"),
    ("--serial_batches", None, "serial_batches", True),
    ("--num_threads", "2", "num_threads", 2),
    ("--batch_size", "3", "batch_size", 3),
    ("--load_size", "300", "load_size", 300),
    ("--crop_size", "128", "crop_size", 128),
    ("--max_dataset_size", "7", "max_dataset_size", 7),
    ("--preprocess", "scale_width", "preprocess", "scale_width"),
    ("--no_flip", None, "no_flip", True),
    ("--display_winsize", "128", "display_winsize", 128),
    ("--epoch", "7", "epoch", "7"),
    ("--verbose", None, "verbose", True),
    ("--load_iter", "5", "epoch", "iter_5"),
    ("--use_wandb", None, "use_wandb", True),
    ("--wandb_project_name", "proj", "wandb_project_name", "proj"),
]
TRAIN = [
    ("--display_freq", "10", "display_freq", 10),
    ("--display_ncols", "2", "display_ncols", 2),
    ("--display_id", "0", "display_id", 0),
    ("--display_server", "http://example.org", "display_server", "http://example.org"),
    ("--display_env", "main", "display_env", "main"),
    ("--display_port", "8098", "display_port", 8098),
    ("--update_html_freq", "10", "update_html_freq", 10),
    ("--print_freq", "10", "print_freq", 10),
    ("--no_html", None, "no_html", True),
    ("--save_latest_freq", "10", "save_latest_freq", 10),
    ("--save_epoch_freq", "2", "save_epoch_freq", 2),
    ("--save_by_iter", None, "save_by_iter", True),
    ("--epoch_count", "3", "epoch_count", 3),
    ("--phase", "val", "phase", "val"),
    ("--n_epochs", "7", "n_epochs", 7),
    ("--n_epochs_decay", "8", "n_epochs_decay", 8),
    ("--beta1", "0.9", "beta1", 0.9),
    ("--lr", "0.001", "lr", 0.001),
    ("--gan_mode", "vanilla", "gan_mode", "vanilla"),
    ("--pool_size", "10", "pool_size", 10),
    ("--lr_policy", "step", "lr_policy", "step"),
    ("--lr_decay_iters", "20", "lr_decay_iters", 20),
    # cycle_gan's option hook
    ("--lambda_A", "5", "lambda_A", 5.0),
    ("--lambda_B", "6", "lambda_B", 6.0),
    ("--lambda_identity", "0.1", "lambda_identity", 0.1),
]
TEST = [
    ("--results_dir", "res", "results_dir", "res"),
    ("--aspect_ratio", "2.0", "aspect_ratio", 2.0),
    ("--phase", "val", "phase", "val"),
    ("--eval", None, "eval", True),
    ("--num_test", "50", "num_test", 50),
]


def argv_of(flag: str, value: str | None) -> list[str]:
    return [flag] if value is None else [flag, value]


@pytest.mark.parametrize(("flag", "value", "key", "expected"), BASE + TRAIN, ids=lambda v: str(v))
def test_train_accepts_the_reference_flag_with_its_meaning(
    tmp_path: Path, flag: str, value: str | None, key: str, expected: object
) -> None:
    base = ["--dataroot", str(tmp_path), "--gpu_ids", "-1", "--checkpoints_dir", str(tmp_path / "c")]
    if flag == "--dataset_mode":  # single is test-only: take another one the reference has
        value, expected = "aligned", "aligned"
    opt = parse_options([*base, *argv_of(flag, value)], is_train=True)
    got = getattr(opt, key)
    assert (str(got) if isinstance(expected, str) else got) == expected, f"{flag} {value} gave {key}={got!r}"


@pytest.mark.parametrize(("flag", "value", "key", "expected"), BASE + TEST, ids=lambda v: str(v))
def test_test_accepts_the_reference_flag_with_its_meaning(
    tmp_path: Path, flag: str, value: str | None, key: str, expected: object
) -> None:
    base = ["--dataroot", str(tmp_path), "--gpu_ids", "-1", "--checkpoints_dir", str(tmp_path / "c")]
    opt = parse_options([*base, *argv_of(flag, value)], is_train=False)
    got = getattr(opt, key)
    assert (str(got) if isinstance(expected, str) else got) == expected, f"{flag} {value} gave {key}={got!r}"


def test_suffix_extends_the_name_as_the_reference(tmp_path: Path) -> None:
    argv = ["--dataroot", str(tmp_path), "--name", "exp", "--suffix", "{model}_{netG}_size{load_size}"]
    assert parse_options(argv, is_train=True).name == "exp_cycle_gan_resnet_9blocks_size286"


def test_pix2pix_and_colorization_hooks_take_the_reference_flags(tmp_path: Path) -> None:
    base = ["--dataroot", str(tmp_path), "--gpu_ids", "-1"]
    opt = parse_options([*base, "--model", "pix2pix", "--lambda_L1", "50", "--direction", "BtoA"], is_train=True)
    assert (opt.lambda_L1, opt.direction, opt.netG, opt.norm, opt.dataset_mode) == (
        50.0,
        "BtoA",
        "unet_256",
        "batch",
        "aligned",
    )
    assert (opt.gan_mode, opt.pool_size) == ("vanilla", 0)
    opt = parse_options([*base, "--model", "colorization"], is_train=True)
    assert (opt.input_nc, opt.output_nc, opt.dataset_mode) == (1, 2, "colorization")


def test_model_test_takes_model_suffix_and_single_data(tmp_path: Path) -> None:
    """The reference's pretrained-model command line: --model test [--model_suffix _A]."""
    argv = ["--dataroot", str(tmp_path), "--name", "h2z_pretrained", "--model", "test", "--no_dropout"]
    opt = parse_options([*argv, "--model_suffix", "_A"], is_train=False)
    assert (opt.model, opt.dataset_mode, opt.model_suffix, opt.no_dropout) == ("test", "single", "_A", True)


@pytest.mark.parametrize("old", sorted(CLASSIC_FLAGS))
@pytest.mark.parametrize("is_train", [True, False], ids=["train", "test"])
def test_pre_2019_flag_names_get_one_line_naming_the_new_flag(tmp_path: Path, capsys, old: str, is_train: bool) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_options(["--dataroot", str(tmp_path), f"{old}=5"], is_train=is_train)
    assert exit_info.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error) == 1 and error[0].endswith(
        f"{old} is the reference's flag name from before 2019: use {CLASSIC_FLAGS[old]}"
    )
