"""The model interface the training loop and test.py rely on, and the MODELS registry."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from models.ema import GeneratorEMA
from models.fast_path import FastPath, prefer_fused
from models.image_pool import ImagePool
from models.networks import define_D, define_G, load_net_state
from models.schedulers import build_scheduler, retarget
from models.tiling import check_tiling, run_generator
from util.errors import UserError
from util.registry import Registry
from util.seeds import stream_seed

MODELS = Registry("model")

if TYPE_CHECKING:
    from options import Options


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(net, "module") and isinstance(net.module, nn.Module):
            net = net.module
        elif hasattr(net, "_orig_mod") and isinstance(net._orig_mod, nn.Module):
            net = net._orig_mod
        else:
            return net


class BaseModel:
    """A model owns its networks, optimizers, schedulers and image pools (all in dicts keyed by
    name, which is also how they appear in checkpoints) and does one training step at a time.

    Subclasses set ``loss_names`` (the keys ``train_step`` returns, in display order),
    ``test_sides`` (which test folders test.py translates) and implement ``train_step``,
    ``inference`` and ``visuals``. Nothing here assumes a single device beyond ``self.device``,
    the device this process computes on.
    """

    trainable: bool = True  # False: test.py only
    loss_names: tuple[str, ...] = ()
    test_sides: tuple[str, ...] = ("A",)
    # losses whose epoch mean the ``plateau`` LR policy monitors
    monitor_losses: tuple[str, ...] = ()
    # the networks that make the model's outputs, whose weights ``--ema_decay`` averages
    generators: tuple[str, ...] = ()

    def __init__(self, opt: Options, device: torch.device) -> None:
        self.opt = opt
        self.device = device
        self.is_train = opt.is_train
        self.nets: dict[str, nn.Module] = {}
        # test.py's --tile/--tile_overlap (absent in training options: 0, off); checked before any work
        self.tile = (getattr(opt, "tile", 0), getattr(opt, "tile_overlap", 0), getattr(opt, "tile_stats_size", 0))
        check_tiling(self.tile[0], self.tile[1], getattr(opt, "size_multiple", 1))
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, object] = {}
        self.pools: dict[str, ImagePool] = {}
        self.fast = FastPath.from_options(opt, device)  # --amp, --channels_last, --compile
        self.ema: GeneratorEMA | None = None  # --ema_decay: set up by ``start_ema`` once the nets exist

    @staticmethod
    def modify_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """Add model-specific options or change defaults (between code defaults and YAML)."""
        return parser

    @classmethod
    def resolve_options(cls, values: dict[str, Any], is_train: bool) -> None:
        """Fill in this model's derived option values in place (``options.resolve`` calls it once
        ``--seed`` is set, before its checks and before ``opt.yaml`` records them); most models
        have none."""

    # ---- the interface ------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One optimisation step on ``batch``. Returns detached 0-dim loss tensors keyed by
        ``loss_names``; they stay on the device until the loop logs them (no sync per step)."""
        raise NotImplementedError

    @torch.inference_mode()
    def inference(
        self, side: str, images: torch.Tensor, items: Sequence[dict] | None = None
    ) -> dict[str, torch.Tensor]:
        """Test-time outputs for a batch of images from test folder ``side``, keyed by label;
        the first entry is the input itself (e.g. ``real_A``). Run under inference mode and
        ``self.fast.autocast()``; outputs in fp32. ``items``: the dataset items the images were
        stacked from, for models that need more of them than the images (a style model: each
        item's ``style`` images and ``style_weights``); the others ignore it."""
        raise NotImplementedError

    def translation_label(self, side: str) -> str:
        """The label of ``inference``'s output that is the translation of side ``side``."""
        raise NotImplementedError

    def ground_truth_label(self, side: str) -> str | None:
        """The label of ``inference``'s output that is the ground truth of the translation, when
        the test items carry it (paired data: ``data.base_dataset.ImageFolderDataset.ground_truth``);
        the model decides how such an item becomes an image. None: the model never outputs one."""
        return None

    def visuals(self) -> dict[str, torch.Tensor]:
        """Images of the last training step, for display."""
        return {}

    def checkpoint_key(self, net_name: str) -> str:
        """Under which name network ``net_name`` is stored in checkpoints."""
        return net_name

    # ---- shared machinery ---------------------------------------------------------------
    def generate(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``net(images)`` at test time for images of any size (the one place models run a
        generator at inference): padded by reflection to the network's size multiple and cropped
        back to the input's size, and tiled with shared normalisation statistics under ``--tile``
        (models.tiling). Tiling hooks the plain module, so it bypasses DDP/compile wrappers."""
        tile, overlap, stats_size = self.tile
        multiple = getattr(self.opt, "size_multiple", 1)
        if tile:
            net = unwrap(net)
        return run_generator(net, images, multiple, tile, overlap, stats_size)

    def build_generator(self, input_nc: int, output_nc: int) -> nn.Module:
        """The ``--netG`` generator with the run's architecture options, on this model's device."""
        opt = self.opt
        net = define_G(
            opt.netG,
            input_nc,
            output_nc,
            opt.ngf,
            opt.norm,
            not opt.no_dropout,
            opt.init_type,
            opt.init_gain,
            upsample=opt.upsample,
        )
        return self.fast.prepare_net(net.to(self.device))

    def build_discriminator(self, input_nc: int) -> nn.Module:
        """The ``--netD`` discriminator with the run's architecture options, on this model's device."""
        opt = self.opt
        net = define_D(
            opt.netD,
            input_nc,
            opt.ndf,
            opt.n_layers_D,
            opt.norm,
            opt.init_type,
            opt.init_gain,
            spectral_norm=opt.spectral_norm,
        )
        return self.fast.prepare_net(net.to(self.device))

    def build_pool(self, side: str) -> ImagePool:
        """A ``--pool_size`` image pool for the fakes of ``side``. With several processes each
        rank has its own pool with its own seeded stream (a single process keeps the stream it
        always had)."""
        rank = (dist.get_rank(),) if dist.is_initialized() and dist.get_world_size() > 1 else ()
        return ImagePool(self.opt.pool_size, seed=stream_seed(self.opt.seed, "pool", side, *rank))

    def distribute(self) -> None:
        """With several processes, wrap every network in DistributedDataParallel: the
        ranks start from rank 0's weights and every backward averages the gradients over the
        ranks. On a GPU, batch norm becomes SyncBatchNorm first (statistics over the global
        batch); torch's SyncBatchNorm runs on GPUs only, so on the CPU batch norm stays per
        process. Instance norm has nothing to synchronise. The optimizers keep working: the
        conversion keeps the parameter objects. A single process: nothing to do."""
        if not (dist.is_initialized() and dist.get_world_size() > 1):
            return
        cuda = self.device.type == "cuda"
        for name, net in self.nets.items():
            if cuda:
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            self.nets[name] = DistributedDataParallel(net, device_ids=[self.device.index] if cuda else None)
        if self.ema is not None:  # DDP gave every rank rank 0's weights: the averages start there too
            self.ema.reset({name: unwrap(self.nets[name]) for name in self.generators})

    # ---- --ema_decay: moving averages of the generators (models/ema.py) ----------------------
    def start_ema(self) -> None:
        """With ``--ema_decay`` (training), start the generators' averages at their initial weights.
        ``models.create_model`` calls it once the networks exist, before ``distribute``/``compile``
        wrap them."""
        decay = self.opt.ema_decay if self.is_train else 0.0
        if not decay:
            return
        if not self.generators:
            raise UserError(f"--ema_decay: --model {self.opt.model} has no generator whose weights it could average")
        self.ema = GeneratorEMA({name: unwrap(self.nets[name]) for name in self.generators}, decay)

    def update_ema(self) -> None:
        """Fold the generators' weights into their averages; the training loop calls it after
        every ``train_step`` (nothing without ``--ema_decay``)."""
        if self.ema is not None:
            self.ema.update({name: unwrap(self.nets[name]) for name in self.generators})

    @contextlib.contextmanager
    def averaged_generators(self) -> Iterator[bool]:
        """Inside, ``self.nets`` holds the generators' averages in place of the trained networks
        (``--eval_freq`` translates with them); yields whether there are any."""
        if self.ema is None:
            yield False
            return
        trained = dict(self.nets)
        self.nets.update(self.ema.nets)
        try:
            yield True
        finally:
            self.nets.update(trained)

    def compile(self) -> None:
        """``--compile``: every network through ``torch.compile`` (after ``distribute``, so DDP's
        gradient hooks are compiled with it). Test-time inference uses the plain modules."""
        for name, net in self.nets.items():
            self.nets[name] = self.fast.compile(net)

    def setup_schedulers(self) -> None:
        opt = self.opt
        self.schedulers = {
            name: build_scheduler(
                optimizer, opt.lr_policy, opt.n_epochs, opt.n_epochs_decay, opt.epoch_count, opt.lr_decay_iters
            )
            for name, optimizer in self.optimizers.items()
        }

    def update_learning_rate(self, monitored: float | None = None) -> float:
        """Step every scheduler once (end of epoch). ``monitored`` feeds ``plateau``."""
        for scheduler in self.schedulers.values():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                if monitored is not None:
                    scheduler.step(monitored)
            else:
                scheduler.step()
        return self.current_lr()

    def current_lr(self) -> float:
        for optimizer in self.optimizers.values():
            return float(optimizer.param_groups[0]["lr"])
        return 0.0

    @staticmethod
    def set_requires_grad(nets: Iterable[nn.Module], requires_grad: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(requires_grad)

    def train(self, mode: bool = True) -> None:
        for net in self.nets.values():
            net.train(mode)

    def eval(self) -> None:
        self.train(False)

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in net.parameters()) for name, net in self.nets.items()}

    def state_dict(self) -> dict:
        """Everything needed to continue training: networks, optimizers, schedulers, pools."""
        return {
            "nets": {self.checkpoint_key(k): unwrap(net).state_dict() for k, net in self.nets.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "pools": self.pools_state(),
            **({"grad_scaler": self.fast.state_dict()} if self.fast.scaler.is_enabled() else {}),
            **({"ema": self.ema_state()} if self.ema is not None else {}),
        }

    def ema_state(self) -> dict:
        """The checkpoint's ``"ema"``: ``{"decay", "updates", "nets": {checkpoint key: averaged state
        dict}}`` (``engine.checkpoint.InferenceCheckpoint`` gives test time these weights)."""
        assert self.ema is not None
        state = self.ema.state_dict()
        state["nets"] = {self.checkpoint_key(name): net for name, net in state["nets"].items()}
        return state

    def pools_state(self) -> dict[str, dict]:
        """The image pools' contents and random streams (``load_pools`` restores them)."""
        return {k: p.state_dict() for k, p in self.pools.items()}

    def load_networks(self, nets: dict[str, dict], source: str) -> None:
        """Load the state dicts of this model's networks strictly; a clear error on mismatch."""
        filled = {}
        for name, net in self.nets.items():
            key = self.checkpoint_key(name)
            if key not in nets:
                raise UserError(f"{source} has no network '{key}' (it has: {', '.join(sorted(nets)) or 'none'})")
            if zeros := load_net_state(unwrap(net), nets[key], f"{source} [{key}]"):
                filled[key] = len(zeros)
        if self.ema is not None:  # averages start at the loaded weights (a checkpoint's own replace them)
            self.ema.reset({name: unwrap(self.nets[name]) for name in self.generators})
        if filled and not (dist.is_initialized() and dist.get_rank() > 0):
            print(
                f"note: {source} is in the reference's --norm none layout (no bias on the convs it ties to the "
                f"norm): loaded with those biases set to zero ({', '.join(f'{k}: {n}' for k, n in filled.items())}), "
                "the same function; training goes on to learn them"
            )

    def load_state_dict(self, state: dict, source: str) -> None:
        """Restore training state. A lean checkpoint (no optimizers/pools, see train.py) leaves
        them as built, fresh, at the schedule's learning rate."""
        self.load_networks(state["nets"], source)
        for k, o in self.optimizers.items():
            if "optimizers" in state:
                o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
            if "optimizers" not in state:  # a fresh optimizer: at the lr the schedule had reached
                for group, lr in zip(self.optimizers[k].param_groups, s._last_lr, strict=True):
                    group["lr"] = lr
        # the stored state holds the run's old --lr/--beta1/schedule; this run's options win
        for k, o in self.optimizers.items():
            for group in o.param_groups:
                if "betas" in group:  # Adam's momentum terms
                    group["betas"] = (self.opt.beta1, group["betas"][1])
            prefer_fused(o)
            if k in self.schedulers:
                retarget(self.schedulers[k], o, self.opt.lr, self.opt.lr_decay_iters)
        if "pools" in state:
            self.load_pools(state["pools"])
        self.fast.load_state_dict(state.get("grad_scaler", {}))
        self.load_ema(state.get("ema"), source)

    def load_ema(self, ema: dict | None, source: str) -> None:
        """Restore the generators' averages from a checkpoint's ``"ema"``; say what happens when
        the checkpoint and ``--ema_decay`` disagree."""
        main = not (dist.is_initialized() and dist.get_rank() > 0)
        if self.ema is None:
            if ema is not None and main:
                print(f"note: {source} holds the generators' moving averages; without --ema_decay they are dropped")
            return
        if ema is None:
            if main:
                print(f"note: {source} holds no moving averages: --ema_decay starts them at its weights")
            return
        nets = ema["nets"]
        self.ema.load_state_dict(
            {"updates": ema["updates"], "nets": {name: nets[self.checkpoint_key(name)] for name in self.generators}}
        )

    def load_pools(self, pools: dict[str, dict]) -> None:
        """The image pools' contents and random streams (a checkpoint's ``pools``)."""
        for k, p in self.pools.items():
            p.load_state_dict(pools[k], self.device)

    def reset_pools(self) -> None:
        """Empty image pools with this rank's fresh streams, as at the start of a run (a resume
        with another number of processes: the saved pools belonged to other ranks)."""
        self.pools = {side: self.build_pool(side) for side in self.pools}
