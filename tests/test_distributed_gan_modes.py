"""DDP with the other GAN objectives: ``--gan_mode wgangp`` (whose gradient penalty is a double
backward through the discriminator: ``torch.autograd.grad(..., create_graph=True)`` inside D's
loss, then the loss's backward through that gradient) and ``--gan_mode vanilla``. Real
processes: ``torch.multiprocessing`` spawn, gloo on the CPU, 2 ranks; tests/test_distributed.py
holds the lsgan tests and the helpers reused here. Marked ``distributed`` (see there).

What the replica comparison below catches (each tried by breaking the code on purpose): a
discriminator left unwrapped; a comm hook that sums, or does not reduce at all; the penalty
detached (``.detach()`` or ``create_graph=False``: the local D gradients are then not the
loss's); the penalty backpropagated in a second ``backward()`` (DDP reduces once per
iteration: the penalty's gradients then stay local); ``DistributedDataParallel(...,
static_graph=True)``, which leaves D's gradients unreduced (its first iteration is the G step,
where D is frozen). ``find_unused_parameters=True``, ``no_sync()`` around the D step (the G
step's forward through D has already armed D's reducer) and a penalty computed through the
unwrapped D (the reducer's hooks sit on the parameters) all still average correctly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine import distributed
from models.base_model import unwrap
from tests.conftest import TINY, find_free_port
from tests.test_distributed import EQUIVALENCE

STEPS = 3
NETS = ("G_A", "G_B", "D_A", "D_B")


def flat_grads(nets: dict, names=NETS) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for name in names for p in nets[name].parameters()])


def flat_params(nets: dict) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for name in NETS for p in nets[name].parameters()])


def critic_loss(netD, real: torch.Tensor, fake: torch.Tensor, gan_mode: str, penalty: bool = True) -> torch.Tensor:
    """The discriminator's loss as the papers write it, independently of models/losses.py.

    wgangp (Gulrajani et al.): E[D(fake)] - E[D(real)] + 10 E[(||grad_x D(x_hat)||_2 - 1)^2] at
    x_hat = alpha real + (1 - alpha) fake, one alpha ~ U[0, 1) per sample drawn from the global
    RNG (as models/losses.py draws it); vanilla: 0.5 (BCE(D(real), 1) + BCE(D(fake), 0)) on logits.
    """
    if gan_mode == "vanilla":
        d_real, d_fake = netD(real), netD(fake)
        real_term = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
        return 0.5 * (real_term + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    loss = netD(fake).mean() - netD(real).mean()
    if not penalty:
        return loss
    alpha = torch.rand(real.shape[0], 1, 1, 1, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(netD(x_hat).sum(), x_hat, create_graph=True)
    return loss + 10 * ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def reference_D_grads(nets: dict, batch: dict, gan_mode: str, penalty: bool = True) -> torch.Tensor:
    """The gradients of D_A's and D_B's losses (in that order: the order the model draws the
    penalties' alphas in) on ``batch``, with the fakes the generators make of it. The model
    does its D step after its G step, but the G step changes neither the fakes (computed
    before it) nor D (frozen); it draws no random number (no dropout, no pool)."""
    with torch.no_grad():
        fake_B, fake_A = nets["G_A"](batch["A"]), nets["G_B"](batch["B"])
    grads = []
    for name, real, fake in (("D_A", batch["B"], fake_B), ("D_B", batch["A"], fake_A)):
        netD = nets[name]
        grads += torch.autograd.grad(critic_loss(netD, real, fake, gan_mode, penalty), list(netD.parameters()))
    return torch.cat([g.flatten() for g in grads])


def _against_a_replica(rank: int, port: int, options: list[str], out: str) -> None:
    """One rank: STEPS float64 training steps under DDP on this rank's own batches. Before each,
    an undistributed replica (same weights, same random state) steps on the same batch; its
    gradients, averaged over the ranks here, are what DDP's must be."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    from models import create_model
    from options import parse_options

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    distributed.init(60, cuda=False)
    try:
        opt = parse_options(options, is_train=True)
        torch.manual_seed(rank)  # different initial weights (DDP starts every rank from rank 0's) and alphas
        model = create_model(opt, torch.device("cpu"))
        model.distribute()
        replica = create_model(opt, torch.device("cpu"))  # never distributed: plain modules
        data = torch.Generator().manual_seed(100 + rank)
        record: dict[str, list] = {"local": [], "ddp": [], "reference_D": [], "critic_only_D": [], "losses": []}
        for _ in range(STEPS):
            batch = {side: torch.rand(2, 3, 32, 32, generator=data) * 2 - 1 for side in "AB"}
            for name in NETS:
                replica.nets[name].load_state_dict(unwrap(model.nets[name]).state_dict())
            rng = torch.get_rng_state()
            record["reference_D"].append(reference_D_grads(replica.nets, batch, opt.gan_mode))
            torch.set_rng_state(rng)
            record["critic_only_D"].append(reference_D_grads(replica.nets, batch, opt.gan_mode, penalty=False))
            torch.set_rng_state(rng)
            replica.train_step(batch)
            record["local"].append(flat_grads(replica.nets))
            torch.set_rng_state(rng)  # the same alphas for the DDP step
            record["losses"].append(torch.stack(list(model.train_step(batch).values())))
            record["ddp"].append(flat_grads(model.nets))
        record["params"] = [flat_params(model.nets)]
        gathered = {}
        for key, tensors in record.items():
            tensor = torch.stack(tensors)
            gathered[key] = [torch.zeros_like(tensor) for _ in range(2)]
            torch.distributed.all_gather(gathered[key], tensor)
        if rank == 0:
            D_size = sum(p.numel() for name in ("D_A", "D_B") for p in model.nets[name].parameters())
            wrappers = {name: type(net).__name__ for name, net in model.nets.items()}
            torch.save({**{k: torch.stack(v) for k, v in gathered.items()}, "D_size": D_size, "nets": wrappers}, out)
    finally:
        distributed.destroy()


@pytest.mark.distributed
@pytest.mark.parametrize("gan_mode", ["wgangp", "vanilla"])
def test_ddp_gradients_are_the_mean_of_the_ranks_local_gradients(tmp_path: Path, gan_mode: str) -> None:
    """2 ranks, different data (and, for wgangp, different penalty alphas), 3 steps in float64.
    At every step, on each rank, every gradient DDP leaves (G's from the G step, D's from the D
    step: for wgangp they include the penalty's, through the double backward) is the mean over
    the ranks of the gradients a plain copy of the networks computes on each rank's own batch,
    to rounding; that copy's D gradients are the paper's loss's (so the penalty is in them:
    not detached, not dropped); and the ranks end with the same weights."""
    options = ["--dataroot", str(tmp_path), *TINY, *EQUIVALENCE, "--gan_mode", gan_mode]
    out = tmp_path / "gathered.pt"
    torch.multiprocessing.spawn(_against_a_replica, args=(find_free_port(), options, str(out)), nprocs=2)
    result = torch.load(out, weights_only=True)
    local, ddp, D = result["local"], result["ddp"], slice(-result["D_size"], None)  # [rank, step, value]

    # the plain copy's D gradients are the formula's, and with wgangp the penalty weighs in them
    off = (local[..., D] - result["reference_D"]).abs().amax(dim=-1) / result["reference_D"].abs().amax(dim=-1)
    assert (off <= 1e-9).all(), f"the D step's gradients are not its loss's (penalty detached or dropped?): {off}"
    if gan_mode == "wgangp":
        penalty_part = (result["reference_D"] - result["critic_only_D"]).norm(dim=-1)
        assert (penalty_part > 0.05 * result["reference_D"].norm(dim=-1)).all()
    # the ranks saw different batches: their local gradients differ (else a mean proves nothing)
    assert ((local[0] - local[1]).abs().amax(dim=-1) > 1e-3 * local[0].abs().amax(dim=-1)).all()

    expected = local.mean(dim=0)  # [step, value]
    for rank in (0, 1):
        for part, where in (("G", slice(0, ddp.shape[-1] - result["D_size"])), ("D", D)):
            error = (ddp[rank, :, where] - expected[:, where]).abs().amax(dim=-1)
            scale = expected[:, where].abs().amax(dim=-1)
            assert (error <= 1e-9 * scale).all(), f"rank {rank}: {part} gradients off the mean by {error / scale}"
    assert torch.equal(result["params"][0], result["params"][1]), "the ranks' weights differ"
    assert not torch.equal(*result["losses"])
    assert set(result["nets"].values()) == {"DistributedDataParallel"}
