"""Options: precedence code < model hook < YAML < CLI, strict YAML, derived values, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import train
from data import DATASETS
from models import MODELS
from models.networks import GENERATORS
from options import format_options, parse_options, save_options


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


USAGE = "usage: train.py [options]; train.py --help lists them"


def option_error(capsys, argv: list[str], is_train: bool = True) -> str:
    """The message of an option error, after checking that it is what a user sees: exit status 2,
    the one short usage line, then one ``train.py: error:`` line, nothing else."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        parse_options(argv, is_train=is_train, prog="train.py")
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0] == USAGE, lines
    prefix = "train.py: error: "
    assert lines[1].startswith(prefix), lines
    return lines[1][len(prefix) :]


def test_precedence_code_hook_yaml_cli(tiny_dataset: Path, tmp_path: Path) -> None:
    root = str(tiny_dataset)
    plain = parse_options(["--dataroot", root])
    assert plain.lr == 0.0002 and plain.n_epochs == 100  # code defaults
    assert plain.no_dropout is True  # the cycle_gan hook changes the code default (False)
    assert plain.defaults["no_dropout"] is True
    assert "no_dropout" not in plain.explicit  # a hook's value is a default, not given
    pix2pix = parse_options(["--dataroot", root, "--model", "pix2pix"])
    assert {"norm", "netG", "dataset_mode", "gan_mode", "pool_size"}.isdisjoint(pix2pix.explicit)

    config = write_yaml(tmp_path / "c.yaml", {"lr": 0.001, "n_epochs": 7, "no_dropout": False, "ngf": 16})
    from_yaml = parse_options(["--dataroot", root, "--config", str(config)])
    assert (from_yaml.lr, from_yaml.n_epochs, from_yaml.no_dropout, from_yaml.ngf) == (0.001, 7, False, 16)

    from_cli = parse_options(["--dataroot", root, "--config", str(config), "--lr", "1e-4", "--no_dropout"])
    assert from_cli.lr == 1e-4 and from_cli.no_dropout is True and from_cli.n_epochs == 7
    assert {"lr", "no_dropout", "n_epochs", "ngf", "dataroot", "config"} <= from_cli.explicit
    assert "beta1" not in from_cli.explicit


def test_yaml_can_set_dataroot_and_model_hook_options(tiny_dataset: Path, tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "c.yaml", {"dataroot": str(tiny_dataset), "lambda_A": 3.5})
    opt = parse_options(["--config", str(config)])
    assert opt.dataroot == tiny_dataset and opt.lambda_A == 3.5


def test_unknown_yaml_key_is_an_error_listing_valid_keys(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    config = write_yaml(tmp_path / "c.yaml", {"lr": 0.1, "learning_rate": 0.1})
    message = option_error(capsys, ["--dataroot", str(tiny_dataset), "--config", str(config)])
    head, _, valid = message.partition(". Valid keys: ")
    assert head == f"unknown key(s) in {config}: learning_rate"
    keys = valid.split(", ")
    assert {"lr", "lambda_identity", "results_dir", "eval_freq"} <= set(keys) and "learning_rate" not in keys


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n_epochs": "many"}, "config key 'n_epochs': invalid literal for int() with base 10: 'many'"),
        ({"n_epochs": 2.5}, "config key 'n_epochs' must be an integer, got 2.5"),
        ({"no_flip": "yes"}, "config key 'no_flip' must be true or false, got 'yes'"),
        ({"netG": "resnet_99blocks"}, "config key 'netG': invalid choice 'resnet_99blocks' (choose from "),
        ({"lr": True}, "config key 'lr' must be a number, got True"),
    ],
)
def test_yaml_values_are_type_checked(tiny_dataset: Path, tmp_path: Path, capsys, values: dict, message: str) -> None:
    config = write_yaml(tmp_path / "c.yaml", values)
    assert option_error(capsys, ["--dataroot", str(tiny_dataset), "--config", str(config)]).startswith(message)


def test_yaml_shared_with_test_py_accepts_train_only_keys(tiny_dataset: Path, tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "c.yaml", {"dataroot": str(tiny_dataset), "n_epochs": 3, "results_dir": "r"})
    assert parse_options(["--config", str(config)], is_train=False).results_dir == "r"
    assert parse_options(["--config", str(config)], is_train=True).n_epochs == 3


def test_derived_values(tiny_dataset: Path) -> None:
    opt = parse_options(["--dataroot", str(tiny_dataset)])
    assert opt.name == "tiny_cycle_gan"
    assert isinstance(opt.seed, int)  # drawn, then recorded
    assert opt.display_env == "tiny_cycle_gan"
    test_opt = parse_options(["--dataroot", str(tiny_dataset), "--crop_size", "128"], is_train=False)
    assert test_opt.load_size == 128 and test_opt.phase == "test"  # no random crop margin at test time
    # scale_width keeps the training scale at test time: load_size stays; given explicitly, it wins
    for preprocess in ("scale_width", "scale_width_and_crop"):
        argv = ["--dataroot", str(tiny_dataset), "--preprocess", preprocess, "--crop_size", "64"]
        assert parse_options(argv, is_train=False).load_size == 286
    argv = ["--dataroot", str(tiny_dataset), "--load_size", "100", "--crop_size", "64"]
    assert parse_options(argv, is_train=False).load_size == 100
    # test-time batch: 1 on a CPU (bigger batches outgrow its caches), 8 on a GPU; given, it wins
    import torch

    on_cpu = ["--dataroot", str(tiny_dataset), "--gpu_ids", "-1"]
    assert parse_options(on_cpu, is_train=False).test_batch_size == 1
    assert parse_options([*on_cpu, "--test_batch_size", "4"], is_train=False).test_batch_size == 4
    on_gpu_0 = parse_options(["--dataroot", str(tiny_dataset), "--gpu_ids", "0"], is_train=False)
    assert on_gpu_0.test_batch_size == (8 if torch.cuda.is_available() else 1)


def test_options_are_read_only(tiny_dataset: Path) -> None:
    opt = parse_options(["--dataroot", str(tiny_dataset)])
    with pytest.raises(AttributeError, match="read-only"):
        opt.lr = 1.0
    changed = opt.replace(lr=1.0)
    assert changed.lr == 1.0 and opt.lr == 0.0002


def test_bare_dataset_name_is_found_under_datasets(tiny_dataset: Path, monkeypatch) -> None:
    monkeypatch.chdir(tiny_dataset.parent)
    (tiny_dataset.parent / "datasets").mkdir()
    tiny_dataset.rename(tiny_dataset.parent / "datasets" / "photos2paintings")
    opt = parse_options(["--dataroot", "photos2paintings"])
    assert opt.dataroot == Path("datasets/photos2paintings") and opt.name == "photos2paintings_cycle_gan"


def test_missing_dataroot_names_expected_folders_and_download(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    message = option_error(capsys, ["--dataroot", "./datasets/horse2zebra"])
    assert message.startswith("--dataroot ./datasets/horse2zebra does not exist")
    assert "trainA/ and trainB/" in message and "bash scripts/download_cyclegan_dataset.sh horse2zebra" in message
    message = option_error(capsys, ["--dataroot", "photo2vangogh"])
    assert "vangogh2photo" in message and "--direction BtoA" in message
    assert option_error(capsys, []) == "--dataroot is required (a dataset folder, or set it in --config)"


def test_unknown_model_lists_the_registered_names(tiny_dataset: Path, capsys) -> None:
    message = option_error(capsys, ["--dataroot", str(tiny_dataset), "--model", "cyclegan"])
    names = ", ".join(f"'{name}'" for name in MODELS.names())
    assert message == f"argument --model: invalid choice: 'cyclegan' (choose from {names})"
    assert {"cycle_gan", "template", "test"} <= set(MODELS.names())


def test_crop_checks(tiny_dataset: Path, capsys) -> None:
    message = option_error(capsys, ["--dataroot", str(tiny_dataset), "--crop_size", "300"])
    assert message == "--crop_size 300 is larger than --load_size 286"
    argv = ["--dataroot", str(tiny_dataset), "--netG", "unet_256", "--crop_size", "200", "--load_size", "286"]
    assert option_error(capsys, argv) == "--netG unet_256 needs --crop_size divisible by 256, got 200"


def test_patchgan_minimum_size_follows_the_preprocessing(tiny_dataset: Path, capsys) -> None:
    root = ["--dataroot", str(tiny_dataset)]
    message = option_error(capsys, [*root, "--crop_size", "16", "--load_size", "20"])
    assert message == (
        "--netD basic needs training images of at least 24x24: --preprocess resize_and_crop gives sides down "
        "to 16 (--crop_size 16)"
    )
    # scale_width: the width is load_size (the height is at least crop_size), so load_size counts
    scale = [*root, "--preprocess", "scale_width", "--crop_size", "32"]
    message = option_error(capsys, [*scale, "--load_size", "16"])
    assert message.endswith("--preprocess scale_width gives sides down to 16 (--load_size 16)")
    assert parse_options([*scale, "--load_size", "24"]).load_size == 24
    # the n_layers discriminator's minimum grows with its depth; none: the files decide
    message = option_error(capsys, [*root, "--netD", "n_layers", "--n_layers_D", "4", "--crop_size", "32"])
    assert message.startswith("--netD n_layers needs training images of at least 48x48")
    assert parse_options([*root, "--preprocess", "none", "--crop_size", "8", "--load_size", "8"]).crop_size == 8


@pytest.mark.parametrize(
    ("argv", "is_train", "message"),
    [
        (["--lr", "0"], True, "--lr must be positive, got 0.0"),
        (["--lr=-1e-4"], True, "--lr must be positive, got -0.0001"),
        (["--lr", "nan"], True, "--lr must be positive, got nan"),
        (["--beta1", "1"], True, "--beta1 must be in [0, 1), got 1.0"),
        (["--beta1", "-0.1"], True, "--beta1 must be in [0, 1), got -0.1"),
        (["--n_layers_D", "0"], True, "--n_layers_D must be at least 1, got 0"),
        (["--aspect_ratio", "0"], False, "--aspect_ratio must be positive, got 0.0"),
        (["--aspect_ratio=-2"], False, "--aspect_ratio must be positive, got -2.0"),
    ],
)
def test_values_out_of_range_are_one_line_errors(
    tiny_dataset: Path, capsys, argv: list[str], is_train: bool, message: str
) -> None:
    assert option_error(capsys, ["--dataroot", str(tiny_dataset), *argv], is_train=is_train) == message


def test_counts_and_frequencies_are_range_checked(tiny_dataset: Path, capsys) -> None:
    message = option_error(capsys, ["--dataroot", str(tiny_dataset), "--print_freq", "0"])
    assert message == "--print_freq must be at least 1, got 0"
    assert parse_options(["--dataroot", str(tiny_dataset), "--n_epochs_decay", "0"]).n_epochs_decay == 0
    assert parse_options(["--dataroot", str(tiny_dataset), "--beta1", "0"]).beta1 == 0.0


def test_abbreviated_flags_are_refused(tiny_dataset: Path, capsys) -> None:
    # argparse would take --continue for --continue_train, bypassing the run's opt.yaml
    assert option_error(capsys, ["--dataroot", str(tiny_dataset), "--continue"]) == "unrecognized arguments: --continue"


def test_help_shows_model_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_options(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--lambda_identity" in out and f"--netG {{{','.join(GENERATORS.names())}}}" in out  # from the registry


def test_format_marks_non_defaults_and_save_round_trips(tiny_dataset: Path, tmp_path: Path) -> None:
    opt = parse_options(["--dataroot", str(tiny_dataset), "--lr", "0.001", "--seed", "5"])
    table = format_options(opt)
    assert any("lr: 0.001" in line and "[default: 0.0002]" in line for line in table.splitlines())
    assert not any("beta1" in line and "[default" in line for line in table.splitlines())
    saved = yaml.safe_load(save_options(opt, tmp_path / "opt.yaml").read_text())
    assert saved["lr"] == 0.001 and saved["seed"] == 5 and saved["dataroot"] == str(tiny_dataset)


def test_dry_run_prints_and_trains_nothing(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    status = train.main(
        [
            "--dataroot",
            str(tiny_dataset),
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--dry_run",
            "--gpu_ids",
            "-1",
            "--ngf",
            "8",
            "--ndf",
            "8",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "dry run: nothing trained" in out and "ngf: 8" in out and "G_A 0." in out
    assert not (tmp_path / "ck").exists()


def test_components_that_only_test_are_refused_for_training(tiny_dataset: Path, capsys) -> None:
    """A one-domain dataset (single) and the pretrained-generator model (test) are for test.py:
    the error lists what train.py takes, read from the registries' specs."""

    def trainable(registry) -> str:
        return ", ".join(name for name in registry.names() if registry.spec(name).trainable)

    assert "single" not in trainable(DATASETS) and {"cycle_gan", "template"} <= set(trainable(MODELS).split(", "))
    message = option_error(capsys, ["--dataroot", str(tiny_dataset), "--dataset_mode", "single"])
    assert message == f"--dataset_mode single is for test.py only; train.py takes {trainable(DATASETS)}"
    message = option_error(capsys, ["--dataroot", str(tiny_dataset / "testA"), "--model", "test"])
    assert message == f"--model test is for test.py only; train.py takes {trainable(MODELS)}"
    assert parse_options(["--dataroot", str(tiny_dataset / "testA"), "--model", "test"], is_train=False).model == "test"
