"""The fast path (models/fast_path.py and CycleGANModel's step): what is the reference's math
stays it, and each switch does what it says.

- The default step batches independent forwards and uses fused Adam: against the paper's
  formulation written out (``ReferenceCycleGAN`` of test_cyclegan_losses, one network call per
  image, Adam by hand) it gives the same losses, gradients and updated weights to 1e-5, for
  instance norm (batched) and batch norm (per call: batching would change its statistics).
- ``--amp bf16|fp16`` runs convolutions in low precision with fp32 weights, losses, pools and
  visuals; fp16's loss scale is checkpointed.
- ``--channels_last`` is the same math in another memory layout; ``--compile`` too (slow).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from data import create_dataset
from models import create_model
from models.fast_path import FastPath, adam, prefer_fused
from options import parse_options
from tests.conftest import REPO_ROOT, TINY
from tests.test_cyclegan_losses import (
    BETA1,
    LAMBDA_A,
    LAMBDA_B,
    LAMBDA_IDT,
    LOSS_NAMES,
    LR,
    ReferenceCycleGAN,
    biases_cancelled_by_instance_norm,
)

RTOL, ATOL = 1e-5, 1e-8


def build(root: Path, *extra: str):
    args = ["--dataroot", str(root), "--seed", "0", *TINY, "--pool_size", "0"]
    args += ["--lambda_A", str(LAMBDA_A), "--lambda_B", str(LAMBDA_B), "--lambda_identity", str(LAMBDA_IDT)]
    args += ["--lr", str(LR), "--beta1", str(BETA1), *extra]
    opt = parse_options(args)
    torch.manual_seed(0)
    model = create_model(opt, torch.device("cpu"))
    model.train()
    dataset = create_dataset(opt)
    batch = {k: torch.stack([dataset[0][k], dataset[1][k]]) for k in ("A", "B")}
    return model, batch


def count_calls(nets: dict[str, nn.Module]) -> dict[str, int]:
    calls = dict.fromkeys(nets, 0)
    for name, net in nets.items():
        net.register_forward_pre_hook(lambda module, args, name=name: calls.__setitem__(name, calls[name] + 1))
    return calls


def differences(model, ref: ReferenceCycleGAN, losses: dict, ref_losses: dict) -> dict[str, str]:
    bad = {}
    for name in LOSS_NAMES:
        got, want = losses[name].item(), ref_losses[name]
        if abs(got - want) > ATOL + RTOL * abs(want):
            bad[f"loss {name}"] = f"{got!r} vs {want!r}"
    for name, net in model.nets.items():
        skip = biases_cancelled_by_instance_norm(net)  # gradient 0 up to rounding: see that file
        for key, p in net.named_parameters():
            if key in skip:
                continue
            want = ref.last_grads[name][key]  # 1e-5 of the tensor's largest gradient, or relative
            if not torch.allclose(p.grad, want, rtol=RTOL, atol=RTOL * want.abs().max().item()):
                bad.setdefault(f"grad {name}", key)
            if not torch.allclose(p.detach(), ref.params[name][key], rtol=RTOL, atol=ATOL):
                bad.setdefault(f"weight {name}", key)
    return bad


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_the_optimised_step_is_the_straightforward_formulation(tiny_dataset: Path, norm: str) -> None:
    model, batch = build(tiny_dataset, "--norm", norm)
    ref = ReferenceCycleGAN(model.nets)  # copies of the same initial weights
    calls = count_calls(model.nets)
    losses = model.train_step(batch)
    ref_losses = ref.step(batch["A"], batch["B"])
    assert differences(model, ref, losses, ref_losses) == {}
    assert all(group["fused"] for o in model.optimizers.values() for group in o.param_groups)
    # the optimised formulation really ran where it may, and only there: per generator 2
    # calls instead of 3 (translation + identity batched, reconstruction), per D 2 instead of 3
    batched = norm == "instance"
    assert model.forwards_batchable() is batched
    assert calls == dict.fromkeys(("G_A", "G_B", "D_A", "D_B"), 2 if batched else 3)


def test_batching_would_change_batch_norm_so_it_is_not_done(tiny_dataset: Path) -> None:
    """Why batch norm keeps one call per image: one call over real and fake together normalises
    with their joint statistics, and the step is no longer the paper's."""
    model, batch = build(tiny_dataset, "--norm", "batch")
    ref = ReferenceCycleGAN(model.nets)
    model.forwards_batchable = lambda: True  # what the guard prevents
    bad = differences(model, ref, model.train_step(batch), ref.step(batch["A"], batch["B"]))
    assert {"loss D_A", "loss D_B", "loss idt_A", "loss idt_B"} <= set(bad)


def test_fused_adam_survives_a_checkpoint_of_a_non_fused_run() -> None:
    p = nn.Parameter(torch.randn(5))
    plain = torch.optim.Adam([p], lr=0.1, foreach=False)
    p.grad = torch.randn(5)
    plain.step()
    fused = adam([p], 0.1, (0.9, 0.999))
    assert fused.param_groups[0]["fused"]
    fused.load_state_dict(plain.state_dict())  # the saved group says fused=None
    assert not fused.param_groups[0]["fused"]
    prefer_fused(fused)
    assert fused.param_groups[0]["fused"] and fused.state[p]["step"].dtype == torch.float32
    expected = p.detach().clone()
    plain.step()  # the same update, through both kernels
    after_plain = p.detach().clone()
    p.data.copy_(expected)
    fused.step()
    torch.testing.assert_close(p.detach(), after_plain, rtol=1e-6, atol=1e-7)


def conv_output_dtypes(model) -> set[torch.dtype]:
    dtypes: set[torch.dtype] = set()
    for net in model.nets.values():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
    return dtypes


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_computes_convolutions_in_low_precision_and_keeps_the_rest_fp32(tiny_dataset: Path, amp: str) -> None:
    model, batch = build(tiny_dataset, "--amp", amp, "--pool_size", "4")
    exact, _ = build(tiny_dataset)
    seen = conv_output_dtypes(model)
    losses = model.train_step(batch)
    exact_losses = exact.train_step(batch)
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    assert seen == {low}
    assert all(p.dtype == torch.float32 for net in model.nets.values() for p in net.parameters())
    assert all(v.dtype == torch.float32 for v in losses.values())
    assert all(v.dtype == torch.float32 for v in model.visuals().values())
    assert all(image.dtype == torch.float32 for pool in model.pools.values() for image in pool.images)
    # the same step, in lower precision: close to the fp32 losses, not equal to them
    for name in LOSS_NAMES:
        assert losses[name].item() == pytest.approx(exact_losses[name].item(), rel=0.05), name
    assert any(losses[name].item() != exact_losses[name].item() for name in LOSS_NAMES)
    out = model.inference("A", batch["A"])
    assert all(out[k].dtype == torch.float32 and out[k].is_inference() for k in ("fake_B", "rec_A"))


def test_fp16_loss_scale_is_checkpointed(tiny_dataset: Path) -> None:
    model, batch = build(tiny_dataset, "--amp", "fp16")
    model.train_step(batch)
    model.fast.scaler.update(new_scale=1024.0)
    state = model.state_dict()
    assert state["grad_scaler"]["scale"] == 1024.0
    fresh, _ = build(tiny_dataset, "--amp", "fp16")
    assert fresh.fast.scaler.get_scale() != 1024.0
    fresh.load_state_dict(state, "test")
    assert fresh.fast.scaler.get_scale() == 1024.0
    plain, _ = build(tiny_dataset)
    assert "grad_scaler" not in plain.state_dict()  # fp32 checkpoints keep the reference's contents


def test_channels_last_is_the_same_math(tiny_dataset: Path) -> None:
    model, batch = build(tiny_dataset, "--channels_last")
    exact, _ = build(tiny_dataset)
    weight = model.nets["G_A"].model[1].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    losses, exact_losses = model.train_step(batch), exact.train_step(batch)
    for name in LOSS_NAMES:
        assert losses[name].item() == pytest.approx(exact_losses[name].item(), rel=RTOL, abs=ATOL), name
    for name in model.nets:
        skip = biases_cancelled_by_instance_norm(model.nets[name])
        for (key, p), q in zip(model.nets[name].named_parameters(), exact.nets[name].parameters(), strict=True):
            if key not in skip:
                noise = RTOL * q.grad.abs().max().item()
                torch.testing.assert_close(p.grad, q.grad, rtol=RTOL, atol=noise)
                assert_same_adam_step(p.detach(), q.detach(), q.grad, noise)


def assert_same_adam_step(got: torch.Tensor, want: torch.Tensor, grad: torch.Tensor, noise: float) -> None:
    """Weights after one Adam step from the same start, given gradients equal up to ``noise``.
    Adam's first step is about lr * sign(gradient): where a gradient is within rounding noise of
    zero, two equal computations summed in another order may step either way (seen on an AVX2
    CPU: a gradient of -7e-7 against -2.3e-6, of a tensor whose largest is 3.0). There the
    weights may differ by up to 2 lr; everywhere else they must agree to 1e-5."""
    clear = grad.abs() > noise
    torch.testing.assert_close(got[clear], want[clear], rtol=RTOL, atol=1e-5)
    off = (got[~clear] - want[~clear]).abs()
    assert off.numel() == 0 or off.max().item() <= 2 * LR * (1 + 1e-3)


def test_fast_path_refuses_what_cannot_work() -> None:
    from util.errors import UserError

    with pytest.raises(UserError, match="CUDA graphs"):
        FastPath(torch.device("cpu"), compile="reduce-overhead")


def bf16_is_emulated() -> bool | None:
    """From the CPU's own flags, independently of torch: True without any AVX-512 (oneDNN then
    emulates bf16), False with native bf16 (AVX512-BF16 or AMX), None where that does not decide."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return None
    lines = [line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")]
    flags = set(lines[0].split(":", 1)[1].split()) if lines else set()
    if {"avx512_bf16", "amx_bf16"} & flags:
        return False
    if "avx2" in flags and not any(flag.startswith("avx512") for flag in flags):
        return True
    return None


def test_train_and_test_cli_with_the_switches(tiny_dataset: Path, tmp_path: Path) -> None:
    common = ["--dataroot", str(tiny_dataset), "--name", "fast", "--checkpoints_dir", str(tmp_path), *TINY]
    train = [sys.executable, "train.py", *common, "--n_epochs", "1", "--n_epochs_decay", "0", "--seed", "0"]
    done = subprocess.run(
        [*train, "--amp", "bf16", "--channels_last"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    warning = "train.py: warning: --amp bf16: this CPU has no native bf16 instructions"
    if (emulated := bf16_is_emulated()) is not None:  # a run that will crawl says so (an AVX2 CPU: ~90x slower)
        assert (warning in done.stderr) == emulated, done.stderr[-2000:]
    saved = (tmp_path / "fast" / "opt.yaml").read_text()
    assert "amp: bf16" in saved and "channels_last: true" in saved
    results = tmp_path / "results"
    for flag in ("--display_id", "--print_freq"):  # train.py's only
        at = common.index(flag)
        del common[at : at + 2]
    test = [sys.executable, "test.py", *common, "--results_dir", str(results), "--amp", "bf16"]
    done = subprocess.run(test, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    if emulated is not None:
        assert (warning.replace("train.py", "test.py") in done.stderr) == emulated, done.stderr[-2000:]
    assert len(list((results / "fast" / "test_latest" / "images").glob("*_fake_B.png"))) == 3
    bad = subprocess.run(
        [*train, "--compile", "reduce-overhead"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("train.py: error: --compile reduce-overhead uses CUDA")


@pytest.mark.slow
def test_compile_trains_the_same_math_and_saves_plain_keys(tiny_dataset: Path) -> None:
    model, batch = build(tiny_dataset, "--compile", "default")
    exact, _ = build(tiny_dataset)
    model.compile()
    assert all(hasattr(net, "_orig_mod") for net in model.nets.values())
    for _ in range(2):
        losses, exact_losses = model.train_step(batch), exact.train_step(batch)
        for name in LOSS_NAMES:
            assert losses[name].item() == pytest.approx(exact_losses[name].item(), rel=1e-4, abs=1e-6), name
    assert model.state_dict()["nets"].keys() == exact.state_dict()["nets"].keys()
    assert list(model.state_dict()["nets"]["G_A"]) == list(exact.state_dict()["nets"]["G_A"])


def test_fast_style_under_bf16_is_close_to_fp32(tmp_path: Path) -> None:
    """The switches are the base model's: another model's step under --amp bf16 runs its
    networks (transformation net, VGG, D) in bf16 and its losses in fp32."""
    from tests.test_fast_style import picture, tiny_model

    content, style = tmp_path / "content", picture(tmp_path / "style.png", 40, 36, seed=9)
    for i in range(3):
        picture(content / f"{i}.png", 40, 40, seed=i)
    model, batch = tiny_model(content, style, tmp_path, "--amp", "bf16", "--lambda_gan", "1")
    exact, _ = tiny_model(content, style, tmp_path, "--lambda_gan", "1")
    seen = conv_output_dtypes(model)
    losses, exact_losses = model.train_step(batch), exact.train_step(batch)
    assert seen == {torch.bfloat16}
    assert set(losses) == set(exact_losses) == {"content", "style", "tv", "G_GAN", "D"}
    for name, value in losses.items():
        assert value.dtype == torch.float32
        assert value.item() == pytest.approx(exact_losses[name].item(), rel=0.1, abs=1e-6), name
