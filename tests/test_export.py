"""export.py: ONNX / TorchScript files of a trained generator equal PyTorch at sizes other than the
export size, the JSON describes the architecture, and test.py --model onnx reproduces test.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

import export
import test as test_script
import train
from models import create_model
from models.networks import define_G
from options import parse_options
from tests.conftest import TINY, write_images
from tests.test_pix2pix import TINY_TEST, train_args, write_aligned
from util.errors import UserError

pytestmark = pytest.mark.slow  # three exports through torch.export (~5 s each on one core)

CPU = ["--gpu_ids", "-1", "--num_threads", "0"]


def net_from_json(info: dict, state: dict) -> torch.nn.Module:
    """The generator rebuilt from nothing but the JSON, with the checkpoint's weights, in eval mode."""
    net = define_G(info["netG"], info["input_nc"], info["output_nc"], info["ngf"], info["norm"], not info["no_dropout"])
    net.load_state_dict(state)
    return net.eval()


def max_differences(stem: Path, net: torch.nn.Module, shapes: list[tuple[int, ...]]) -> dict:
    """{(format, shape): max abs difference from ``net``} for the .onnx and .pt files of ``stem``."""
    session = onnxruntime.InferenceSession(str(stem.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(stem.with_suffix(".pt")))
    diffs = {}
    for i, shape in enumerate(shapes):
        x = torch.rand(shape, generator=torch.Generator().manual_seed(i)) * 2 - 1
        with torch.inference_mode():
            expected = net(x)
            traced = scripted(x)
        onnx_out = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert onnx_out.shape == traced.shape == expected.shape
        diffs[("onnx", shape)] = (onnx_out - expected).abs().max().item()
        diffs[("torchscript", shape)] = (traced - expected).abs().max().item()
    print(diffs)
    return diffs


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory) -> Path:
    """A tiny trained cycle_gan run (resnet_6blocks, ngf 8), exported with the defaults."""
    tmp = tmp_path_factory.mktemp("cg")
    root = tmp / "data"
    for side, count, seed in (("trainA", 3, 1), ("trainB", 2, 2), ("testA", 3, 3), ("testB", 2, 4)):
        write_images(root / side, count, seed=seed)
    ck = tmp / "ck"
    assert (
        train.main(["--dataroot", str(root), "--name", "cg", "--checkpoints_dir", str(ck), *TINY, "--max_iters", "2"])
        == 0
    )
    assert export.main(["--name", "cg", "--checkpoints_dir", str(ck)]) == 0
    return tmp


def test_cyclegan_export_equals_pytorch_at_other_sizes(cyclegan_run: Path) -> None:
    stem = cyclegan_run / "ck" / "cg" / "export" / "cg_G_A"
    info = json.loads(stem.with_suffix(".json").read_text())
    assert (info["net"], info["netG"], info["ngf"], info["norm"]) == ("G_A", "resnet_6blocks", 8, "instance")
    assert (info["input_nc"], info["output_nc"], info["size_multiple"], info["no_dropout"]) == (3, 3, 4, True)
    assert info["input"]["range"] == [-1.0, 1.0] and info["trace_size"] == [40, 40]
    checkpoint = cyclegan_run / "ck" / "cg" / "latest.pth"
    assert info["checkpoint"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    nets = torch.load(checkpoint, weights_only=True)["nets"]
    net = net_from_json(info, nets["G_A"])
    diffs = max_differences(stem, net, [(1, 3, 64, 64), (2, 3, 96, 128)])
    assert max(diffs.values()) <= 1e-4
    # and it is G_A, not G_B: G_B's output differs
    other = net_from_json(info, nets["G_B"])
    assert max(max_differences(stem, other, [(1, 3, 64, 64)]).values()) > 1e-3


def test_test_py_runs_the_onnx_file_like_the_run(cyclegan_run: Path) -> None:
    """test.py --model onnx (no training run folder) saves the fakes test.py --eval saves for the run."""
    ck, res = cyclegan_run / "ck", cyclegan_run / "res"
    assert (
        test_script.main(
            [
                "--dataroot",
                str(cyclegan_run / "data"),
                "--name",
                "cg",
                "--checkpoints_dir",
                str(ck),
                "--results_dir",
                str(res),
                "--eval",
                *CPU,
            ]
        )
        == 0
    )
    deploy = cyclegan_run / "deploy"  # the exported files alone, away from the run
    deploy.mkdir()
    for suffix in (".onnx", ".json"):
        shutil.copy(ck / "cg" / "export" / f"cg_G_A{suffix}", deploy)
    args = [
        "--model",
        "onnx",
        "--onnx_model",
        str(deploy / "cg_G_A.onnx"),
        "--dataroot",
        str(cyclegan_run / "data" / "testA"),
    ]
    args += ["--name", "deployed", "--checkpoints_dir", str(cyclegan_run / "none"), "--results_dir", str(res)]
    assert test_script.main([*args, "--crop_size", "32", *CPU]) == 0
    for i in range(3):
        ours = np.asarray(Image.open(res / "deployed" / "test_latest" / "images" / f"{i:04d}_fake.png"), dtype=int)
        run = np.asarray(Image.open(res / "cg" / "test_latest" / "images" / f"{i:04d}_fake_B.png"), dtype=int)
        real = np.asarray(Image.open(res / "deployed" / "test_latest" / "images" / f"{i:04d}_real.png"), dtype=int)
        assert ours.shape == run.shape == (32, 32, 3)
        assert np.abs(ours - run).max() <= 1
        assert np.abs(ours - real).max() > 10  # a translation, not the input
    assert (res / "deployed" / "test_latest" / "index.html").is_file()


def test_unet_export_is_eval_mode_and_takes_multiples_of_128(tmp_path: Path, capsys) -> None:
    """pix2pix's batch-norm unet_128 with dropout: exported in eval mode (running statistics, no
    dropout); ONNX/TorchScript equal PyTorch at 256x256 and 128x256; a 64 px crop is one line."""
    root = tmp_path / "facades"
    write_aligned(root / "train", 3, seed=1)
    write_aligned(root / "test", 2, seed=2)
    args = [*train_args(root, tmp_path, "unet"), "--netG", "unet_128", "--ngf", "8", *TINY_TEST[6:]]
    assert (
        train.main(
            [
                *args,
                "--ndf",
                "8",
                "--display_id",
                "0",
                "--crop_size",
                "128",
                "--load_size",
                "128",
                "--max_iters",
                "2",
                "--print_freq",
                "1",
            ]
        )
        == 0
    )
    out = tmp_path / "deploy"
    assert export.main(["--name", "unet", "--checkpoints_dir", str(tmp_path / "ck"), "--out", str(out)]) == 0
    stem = out / "unet_G"
    info = json.loads(stem.with_suffix(".json").read_text())
    assert (info["netG"], info["norm"], info["no_dropout"], info["size_multiple"]) == ("unet_128", "batch", False, 128)
    state = torch.load(tmp_path / "ck" / "unet" / "latest.pth", weights_only=True)["nets"]["G"]
    net = net_from_json(info, state)
    diffs = max_differences(stem, net, [(1, 3, 256, 256), (2, 3, 128, 256)])
    assert max(diffs.values()) <= 1e-4
    net.train()  # batch statistics and dropout: the export must not be that
    assert max(max_differences(stem, net, [(2, 3, 128, 256)]).values()) > 1e-3

    small = ["--model", "onnx", "--onnx_model", str(stem.with_suffix(".onnx")), "--dataroot", str(root / "test")]
    small += ["--name", "u", "--results_dir", str(tmp_path / "res"), *CPU]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # the options' check: the JSON set --netG unet_128
        test_script.main([*small, "--crop_size", "64"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "test.py: error: --netG unet_128 needs --crop_size divisible by 128, got 64"
    # and the model's own check, for images that reach it at another size
    model = create_model(parse_options([*small, "--crop_size", "128"], is_train=False), torch.device("cpu"))
    with pytest.raises(UserError, match=r"needs image sides divisible by 128, got 64x128"):
        model.inference("A", torch.zeros(1, 3, 64, 128))
    assert model.inference("A", torch.zeros(1, 3, 128, 128))["fake"].shape == (1, 3, 128, 128)


def test_reference_weights_export(tmp_path: Path, reference_fixtures: Path) -> None:
    """The reference's G_resnet9_ngf8.pth as latest_net_G.pth (--model test): the files equal
    PyTorch and reproduce the reference's own output."""
    run = tmp_path / "ck" / "pre"
    run.mkdir(parents=True)
    shutil.copy(reference_fixtures / "G_resnet9_ngf8.pth", run / "latest_net_G.pth")
    flags = ["--name", "pre", "--checkpoints_dir", str(tmp_path / "ck"), "--model", "test", "--netG", "resnet_9blocks"]
    assert export.main([*flags, "--ngf", "8", "--no_dropout"]) == 0
    stem = run / "export" / "pre_G"
    info = json.loads(stem.with_suffix(".json").read_text())
    assert info["checkpoint"]["path"] == str(run / "latest_net_G.pth")
    assert info["checkpoint"]["sha256"] == hashlib.sha256((run / "latest_net_G.pth").read_bytes()).hexdigest()
    net = net_from_json(info, torch.load(run / "latest_net_G.pth", weights_only=True))
    assert max(max_differences(stem, net, [(1, 3, 64, 64), (2, 3, 96, 128)]).values()) <= 1e-4
    io = torch.load(reference_fixtures / "G_resnet9_ngf8_io.pt", weights_only=True)
    session = onnxruntime.InferenceSession(str(stem.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": io["input"].numpy()})[0]
    assert np.abs(got - io["output_eval"].numpy()).max() <= 1e-4


def test_bad_inputs_are_one_line(cyclegan_run: Path, tmp_path: Path, capsys) -> None:
    ck = str(cyclegan_run / "ck")

    def error(*argv: str) -> str:
        capsys.readouterr()
        assert export.main(list(argv)) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    assert error("--name", "cg", "--checkpoints_dir", ck, "--net", "G_C") == (
        "export.py: error: --net G_C: no such network in this model (it has: G_A, G_B)"
    )
    assert "no checkpoint '7'" in error("--name", "cg", "--checkpoints_dir", ck, "--epoch", "7")
    (tmp_path / "ck" / "empty").mkdir(parents=True)
    assert "holds no checkpoints" in error("--name", "empty", "--checkpoints_dir", str(tmp_path / "ck"))
    assert (
        error("--name", "nope", "--checkpoints_dir", ck)
        == f"export.py: error: no run folder {Path(ck) / 'nope'} (set --checkpoints_dir or --name)"
    )
    assert "give one or more of onnx, torchscript" in error(
        "--name", "cg", "--checkpoints_dir", ck, "--format", "tflite"
    )


def test_a_file_that_differs_from_pytorch_fails_the_export(
    cyclegan_run: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """The check after writing is real: with no tolerance at all, ONNX's float rounding (~1e-6,
    see the test above) fails it with exit 1 and one line."""
    import engine.export

    monkeypatch.setattr(engine.export, "TOLERANCE", 0.0)
    capsys.readouterr()
    args = ["--name", "cg", "--checkpoints_dir", str(cyclegan_run / "ck"), "--format", "onnx", "--out", str(tmp_path)]
    assert export.main(args) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"export.py: error: {tmp_path / 'cg_G_A.onnx'} differs from PyTorch by "
    )
    assert lines[0].endswith("on a (2, 3, 44, 48) input: not written")
    assert list(tmp_path.iterdir()) == []  # neither the failed file nor a temporary one is left


def test_without_onnxruntime_the_onnx_model_names_the_package(cyclegan_run: Path, capsys, monkeypatch) -> None:
    """onnxruntime is optional at run time (requirements-dev.txt): its absence is one line naming it."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    onnx_file = cyclegan_run / "ck" / "cg" / "export" / "cg_G_A.onnx"
    args = ["--model", "onnx", "--onnx_model", str(onnx_file), "--dataroot", str(cyclegan_run / "data" / "testA")]
    capsys.readouterr()
    assert test_script.main([*args, "--name", "x", "--results_dir", str(cyclegan_run / "res_x"), *CPU]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["test.py: error: --model onnx needs onnxruntime: pip install onnxruntime"]
    assert not (cyclegan_run / "res_x").exists()
