"""Options: precedence code < model hook < YAML < CLI, strict YAML, derived values, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import train
from options import format_options, parse_options, save_options


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def test_precedence_code_hook_yaml_cli(tiny_dataset: Path, tmp_path: Path) -> None:
    root = str(tiny_dataset)
    plain = parse_options(["--dataroot", root])
    assert plain.lr == 0.0002 and plain.n_epochs == 100  # code defaults
    assert plain.no_dropout is True  # the cycle_gan hook changes the code default (False)
    assert plain.defaults["no_dropout"] is True

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
    with pytest.raises(SystemExit) as exc:
        parse_options(["--dataroot", str(tiny_dataset), "--config", str(config)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown key(s)" in err and "learning_rate" in err and "Valid keys:" in err and "lambda_identity" in err


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n_epochs": "many"}, "n_epochs"),
        ({"n_epochs": 2.5}, "must be an integer"),
        ({"no_flip": "yes"}, "true or false"),
        ({"netG": "resnet_99blocks"}, "invalid choice"),
        ({"lr": True}, "must be a number"),
    ],
)
def test_yaml_values_are_type_checked(tiny_dataset: Path, tmp_path: Path, capsys, values: dict, message: str) -> None:
    config = write_yaml(tmp_path / "c.yaml", values)
    with pytest.raises(SystemExit):
        parse_options(["--dataroot", str(tiny_dataset), "--config", str(config)])
    assert message in capsys.readouterr().err


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
    with pytest.raises(SystemExit) as exc:
        parse_options(["--dataroot", "./datasets/horse2zebra"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "trainA/ and trainB/" in err and "bash scripts/download_cyclegan_dataset.sh horse2zebra" in err
    with pytest.raises(SystemExit):
        parse_options(["--dataroot", "photo2vangogh"])
    err = capsys.readouterr().err
    assert "vangogh2photo" in err and "--direction BtoA" in err
    with pytest.raises(SystemExit):
        parse_options([])
    assert "--dataroot is required" in capsys.readouterr().err


def test_unknown_model_lists_the_registered_names(tiny_dataset: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_options(["--dataroot", str(tiny_dataset), "--model", "cyclegan"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'cyclegan'" in err and "cycle_gan" in err and "template" in err


def test_crop_checks(tiny_dataset: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_options(["--dataroot", str(tiny_dataset), "--crop_size", "300"])
    assert "larger than --load_size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_options(
            ["--dataroot", str(tiny_dataset), "--netG", "unet_256", "--crop_size", "200", "--load_size", "286"]
        )
    assert "divisible by 256" in capsys.readouterr().err


def test_counts_and_frequencies_are_range_checked(tiny_dataset: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_options(["--dataroot", str(tiny_dataset), "--print_freq", "0"])
    assert "--print_freq must be at least 1, got 0" in capsys.readouterr().err
    assert parse_options(["--dataroot", str(tiny_dataset), "--n_epochs_decay", "0"]).n_epochs_decay == 0


def test_abbreviated_flags_are_refused(tiny_dataset: Path, capsys) -> None:
    # argparse would take --continue for --continue_train, bypassing the run's opt.yaml
    with pytest.raises(SystemExit):
        parse_options(["--dataroot", str(tiny_dataset), "--continue"])
    assert "unrecognized arguments: --continue" in capsys.readouterr().err


def test_help_shows_model_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_options(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--lambda_identity" in out and "--netG {resnet_6blocks,resnet_9blocks,unet_128,unet_256}" in out


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
