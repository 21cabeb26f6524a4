"""Networks: equivalence with the reference's fixtures, a sweep over every registered network,
initialisation, and checkpoint-loading compatibility."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch

from models.networks import (
    DISCRIMINATORS,
    GENERATORS,
    NORM_TYPES,
    define_D,
    define_G,
    init_weights,
    load_net_state,
    patch_reference_state,
)
from util.errors import UserError

FIXTURES = {
    "G_resnet9_ngf8": lambda: define_G("resnet_9blocks", 3, 3, 8, "instance"),
    "D_basic_ndf8": lambda: define_D("basic", 3, 8, 3, "instance"),
    "G_unet128_ngf8": lambda: define_G("unet_128", 3, 3, 8, "batch"),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_reference_fixture_loads_strictly_and_reproduces_outputs(reference_fixtures: Path, name: str) -> None:
    net = FIXTURES[name]()
    state = torch.load(reference_fixtures / f"{name}.pth", map_location="cpu", weights_only=True)
    assert set(net.state_dict()) == set(state), "state-dict keys differ from the reference"
    net.load_state_dict(state, strict=True)
    io = torch.load(reference_fixtures / f"{name}_io.pt", map_location="cpu", weights_only=True)
    with torch.no_grad():
        out_eval = copy.deepcopy(net).eval()(io["input"])
        out_train = copy.deepcopy(net).train()(io["input"])
    torch.testing.assert_close(out_eval, io["output_eval"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out_train, io["output_train"], atol=1e-4, rtol=0)


def parse_shape(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


def test_full_size_networks_match_reference_keys_and_counts(reference_fixtures: Path) -> None:
    listing = (reference_fixtures / "keys_full_size_G_resnet9_ngf64_D_basic_ndf64.txt").read_text()
    sections = re.split(r"^# ", listing, flags=re.M)
    expected = {}
    for section in sections:
        lines = [line.split("\t") for line in section.splitlines()[1:] if "\t" in line]
        if section.startswith("G "):
            expected["G"] = {k: parse_shape(shape) for k, shape, _ in lines}
        elif section.startswith("D "):
            expected["D"] = {k: parse_shape(shape) for k, shape, _ in lines}
    for key, net in (("G", define_G("resnet_9blocks")), ("D", define_D("basic"))):
        shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        assert shapes == expected[key]


def test_default_parameter_counts() -> None:
    # the reference's published sizes (field notes §1)
    assert sum(p.numel() for p in define_G("resnet_9blocks").parameters()) == 11_378_179
    assert sum(p.numel() for p in define_D("basic").parameters()) == 2_764_737


@pytest.mark.parametrize("norm", sorted(NORM_TYPES))
@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_sweep(name: str, norm: str) -> None:
    multiple = GENERATORS.spec(name).size_multiple  # the generator's own spec: no test edit per network
    size = multiple * max(1, 32 // multiple)
    torch.manual_seed(0)
    net = define_G(name, 3, 2, ngf=4, norm=norm, use_dropout=True)
    x = torch.rand(2, 3, size, size) * 2 - 1
    y = net(x)
    assert y.shape == (2, 2, size, size)
    assert torch.isfinite(y).all() and y.abs().max() <= 1
    y.square().mean().backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad[:3]}"
    zero = [n for n, p in net.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, f"parameters with an all-zero gradient: {zero[:3]}"


@pytest.mark.parametrize("norm", sorted(NORM_TYPES))
@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_discriminator_sweep(name: str, norm: str) -> None:
    torch.manual_seed(0)
    net = define_D(name, 3, ndf=4, n_layers_D=2, norm=norm)
    smallest = DISCRIMINATORS.spec(name).min_input(2)  # what options check crops against
    for size in (64, smallest):
        x = torch.rand(2, 3, size, size) * 2 - 1
        y = net(x)
        assert y.shape[:2] == (2, 1) and y.dim() == 4 and torch.isfinite(y).all()
    y.mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without gradient: {missing[:3]}"
    if norm == "instance" and smallest > 1:  # the spec is the true minimum: one pixel less fails
        with pytest.raises((RuntimeError, ValueError)):
            net(torch.rand(2, 3, smallest - 1, smallest - 1))


def test_patchgan_output_sizes_are_the_references() -> None:
    assert define_D("basic", ndf=4)(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert define_D("n_layers", ndf=4, n_layers_D=2)(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 14, 14)
    assert define_D("pixel", ndf=4)(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_norm_none_keeps_conv_biases_and_batch_drops_them() -> None:
    def conv_biases(net: torch.nn.Module) -> list[bool]:
        return [m.bias is not None for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]

    assert all(conv_biases(define_G("resnet_6blocks", ngf=4, norm="none")))
    assert all(conv_biases(define_D("basic", ndf=4, norm="none")))
    batch = conv_biases(define_G("resnet_6blocks", ngf=4, norm="batch"))
    assert batch[-1] and not any(batch[:-1])  # only the final conv keeps its bias, as the reference


def test_unet_rejects_bad_sizes_with_a_clear_message() -> None:
    net = define_G("unet_256", ngf=4)
    with pytest.raises(ValueError, match="divisible by 256"):
        net(torch.zeros(1, 3, 128, 128))


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_types(init_type: str) -> None:
    torch.manual_seed(0)
    net = define_G("resnet_6blocks", ngf=16, norm="batch", init_type=init_type, init_gain=0.02)
    conv = net.model[10].conv_block[1]  # a 64x64x3x3 conv inside a residual block
    w = conv.weight.detach()
    fan_in = w[0].numel()
    expected_std = {"normal": 0.02, "xavier": 0.02 * (2 / (fan_in + fan_in)) ** 0.5, "kaiming": (2 / fan_in) ** 0.5}
    if init_type in expected_std:
        assert w.std().item() == pytest.approx(expected_std[init_type], rel=0.1)
    else:  # orthogonal rows: W W^T = gain^2 I
        flat = w.flatten(1)
        torch.testing.assert_close(flat @ flat.T, 0.02**2 * torch.eye(flat.shape[0]), atol=1e-6, rtol=0)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.bias.abs().sum() == 0 for m in bns)
    assert torch.cat([m.weight.detach() for m in bns]).mean().item() == pytest.approx(1.0, abs=0.01)


def test_init_is_reproducible_with_a_seed() -> None:
    torch.manual_seed(3)
    a = define_D("basic", ndf=4)
    torch.manual_seed(3)
    b = define_D("basic", ndf=4)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(ValueError, match="unknown init_type"):
        init_weights(a, "nope")


def test_old_instance_norm_keys_are_dropped_as_the_reference_does(reference_fixtures: Path) -> None:
    net = define_G("resnet_9blocks", 3, 3, 8, "instance")
    state = dict(torch.load(reference_fixtures / "G_resnet9_ngf8.pth", map_location="cpu", weights_only=True))
    # what a checkpoint from PyTorch < 0.4 carries for the InstanceNorm at model.2
    state["model.2.running_mean"] = torch.zeros(8)
    state["model.2.running_var"] = torch.ones(8)
    state["model.2.num_batches_tracked"] = torch.tensor(0)
    with pytest.raises(RuntimeError):
        net.load_state_dict(state, strict=True)
    patched = patch_reference_state(state, net)
    assert "model.2.running_mean" not in patched
    load_net_state(net, state, "old checkpoint")  # loads after patching


def test_mismatched_checkpoint_error_names_the_likely_flag() -> None:
    with_dropout = define_G("resnet_6blocks", ngf=4, use_dropout=True).state_dict()
    without = define_G("resnet_6blocks", ngf=4, use_dropout=False)
    with pytest.raises(UserError, match="trained with dropout: remove --no_dropout"):
        load_net_state(without, with_dropout, "ckpt")
    bigger = define_G("resnet_6blocks", ngf=8).state_dict()
    with pytest.raises(UserError, match="shape mismatches.*--ngf"):
        load_net_state(without, bigger, "ckpt")
