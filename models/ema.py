"""``--ema_decay``: an exponential moving average of the generators' weights.

Averaged weights of a GAN generator are usually better than the last step's (less of the
oscillation the adversarial game adds to every step), at the cost of one more copy of each
generator. After optimiser step t (t = 0, 1, ... counts the updates done before this one)::

    decay_t = min(ema_decay, (1 + t) / (10 + t))
    ema     = decay_t * ema + (1 - decay_t) * weights        (every parameter)
    buffers of ema = buffers of the network                  (e.g. batch-norm running statistics)

The warm-up term (1 + t) / (10 + t) (0.1, 0.18, 0.25, ... 0.9 at t = 80, 0.99 at t = 890) keeps
the early average from being dominated by the random initial weights, which with a plain 0.999
would still make up 37 % of it after 1000 steps. The averages are fp32 copies of the plain
modules (not of DDP / compile wrappers); under DDP every rank holds the same parameters, so every
rank's average is the same too.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


def warmup_decay(ema_decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (0 for the first): ``ema_decay`` once warmed up."""
    return min(ema_decay, (1 + updates) / (10 + updates))


class GeneratorEMA:
    """Moving averages of some networks, keyed by network name (as ``BaseModel.nets``)."""

    def __init__(self, nets: dict[str, nn.Module], ema_decay: float) -> None:
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
        self.decay = ema_decay
        self.updates = 0
        # a copy per network: the average starts at the initial (or loaded) weights
        self.nets: dict[str, nn.Module] = {name: self._copy(net) for name, net in nets.items()}

    @staticmethod
    def _copy(net: nn.Module) -> nn.Module:
        average = copy.deepcopy(net)
        average.requires_grad_(False)
        return average

    @torch.no_grad()
    def update(self, nets: dict[str, nn.Module]) -> None:
        """Fold the networks' current weights into the averages (after an optimiser step)."""
        decay = warmup_decay(self.decay, self.updates)
        for name, average in self.nets.items():
            net = nets[name]
            for mine, theirs in zip(average.parameters(), net.parameters(), strict=True):
                mine.mul_(decay).add_(theirs.detach(), alpha=1.0 - decay)
            for mine, theirs in zip(average.buffers(), net.buffers(), strict=True):
                mine.copy_(theirs)
        self.updates += 1

    @torch.no_grad()
    def reset(self, nets: dict[str, nn.Module]) -> None:
        """Start the averages afresh at the networks' current weights (a resume from a checkpoint
        without averages)."""
        for name, average in self.nets.items():
            average.load_state_dict(nets[name].state_dict())
        self.updates = 0

    def state_dict(self) -> dict:
        """What a checkpoint keeps under ``"ema"``: the averaged state dicts and the update count
        (the warm-up depends on it)."""
        return {
            "decay": self.decay,
            "updates": self.updates,
            "nets": {name: net.state_dict() for name, net in self.nets.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        for name, average in self.nets.items():
            average.load_state_dict(state["nets"][name])
        self.updates = int(state["updates"])
