"""Checkpoints: one file per save, one plain dict, written atomically, read with weights_only.

Layout of ``checkpoints/<name>/<tag>.pth`` (tag: ``latest``, an epoch number, ``iter_<n>``)::

    {"format_version": 1, "epoch": int, "epoch_samples": int, "total_iters": int,
     "options": {...plain values...},
     "nets": {"G_A": state_dict, ...}, "optimizers": {...}, "schedulers": {...},
     "pools": {"A": {"size", "images", "rng"}, ...},
     "tracker": {"epoch_sums", "epoch_count"},
     "ema": {"decay", "updates", "nets": {"G_A": state_dict, ...}} (only with --ema_decay: the
            generators' moving averages, which test time uses unless --no_ema),
     "rng": {"torch": ByteTensor, "cuda": ByteTensor (this process's device only)},
     "world_size": int (only when above 1), "rank_shards": "latest.ranks/<token>" (a full save
     of several processes: ranks 1.. keep their "pools", "rng", "tracker" in
     <token>/rank_<r>.pth, see engine.run)}

``epoch`` is the epoch to continue with and ``epoch_samples`` how many of its samples are done
(0 after an epoch's end, whose position is "start of the next epoch"), so a resumed run
continues with the next batch of the same epoch.
The reference's per-network files (``latest_net_G_A.pth``) are read too, and
``scripts/convert_checkpoint.py`` turns them into a weights-only ``<tag>.pth``::

    {"format_version": 1, "nets": {...}, "converted_from": "<the files>"}

which holds no position, options or optimizers: ``--continue_train`` takes the weights and starts
at ``--epoch_count``, as from the reference's files (``is_training_state``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from util.errors import UserError
from util.fileio import atomic_write, load_torch_file

FORMAT_VERSION = 1


def checkpoint_path(run_dir: Path, tag: str | int) -> Path:
    return Path(run_dir) / f"{tag}.pth"


def shard_folder(tag: str, token: str) -> str:
    """Where, relative to the run's folder, one save of ``tag`` keeps the other ranks' shards
    (``engine.run`` has the protocol): ``latest.ranks/<token>``."""
    return f"{tag}.ranks/{token}"


def shard_file(run_dir: Path, folder: str, rank: int) -> Path:
    """Rank ``rank``'s shard in ``folder`` (as a checkpoint names it: relative, inside the run)."""
    relative = Path(folder)
    if relative.is_absolute() or ".." in relative.parts:
        raise UserError(f"a checkpoint in {run_dir} names per-rank state outside its run folder: {folder}")
    return Path(run_dir) / relative / f"rank_{rank}.pth"


def remove_shard_sets(run_dir: Path, tag: str, keep: str | None) -> None:
    """Delete the shard sets of ``tag`` except ``keep`` (a ``shard_folder``); the folder too when
    none is left."""
    parent = Path(run_dir) / f"{tag}.ranks"
    if not parent.is_dir():
        return
    for folder in parent.iterdir():
        if keep is None or folder != Path(run_dir) / keep:
            shutil.rmtree(folder, ignore_errors=True)
    if keep is None:
        shutil.rmtree(parent, ignore_errors=True)


def save_checkpoint(path: Path, state: dict) -> Path:
    """Write ``state`` (plus the format version) atomically: the old file survives any crash."""
    state = {"format_version": FORMAT_VERSION, **state}
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    state = load_torch_file(path, "checkpoint", map_location)  # truncated, not a torch file, pickled objects
    if not isinstance(state, dict) or "format_version" not in state:
        raise UserError(f"{path} is not a checkpoint of this project (no format_version)")
    if state["format_version"] > FORMAT_VERSION:
        raise UserError(f"{path} has format {state['format_version']}; this code reads up to {FORMAT_VERSION}")
    return state


def is_training_state(state: dict) -> bool:
    """Whether a checkpoint records where its training stopped (every save of train.py does); a
    weights-only file (converted from the reference's) does not."""
    return all(key in state for key in ("epoch", "epoch_samples", "total_iters", "options"))


def rng_state(device: torch.device) -> dict:
    """The global random states this process draws from: the CPU's and, on a GPU, only that
    device's (a run resumed with fewer visible GPUs must still be able to restore it)."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def reference_net_file(run_dir: Path, tag: str, key: str) -> Path:
    """The reference codebase's per-network file, e.g. ``latest_net_G_A.pth``."""
    return Path(run_dir) / f"{tag}_net_{key}.pth"


def load_reference_nets(run_dir: Path, tag: str, keys: list[str]) -> dict[str, dict]:
    """State dicts from the reference's files ``<tag>_net_<key>.pth`` (bare state dicts)."""
    nets = {}
    for key in keys:
        path = reference_net_file(run_dir, tag, key)
        if not path.is_file():
            raise UserError(f"no checkpoint {checkpoint_path(run_dir, tag)} and no reference file {path}")
        state_dict = load_torch_file(path)
        if not isinstance(state_dict, dict):
            raise UserError(f"{path} does not hold a state dict")
        nets[key] = state_dict
    return nets


def available_tags(run_dir: Path) -> list[str]:
    """Checkpoint tags in ``run_dir``: ours (``<tag>.pth``) and the reference's (``<tag>_net_*.pth``)."""
    tags = set()
    for path in Path(run_dir).glob("*.pth"):
        tags.add(path.stem.split("_net_")[0] if "_net_" in path.stem else path.stem)
    return sorted(tags, key=lambda t: (not t.isdigit(), int(t) if t.isdigit() else 0, t))


@dataclass(frozen=True)
class InferenceCheckpoint:
    """What test time needs from a checkpoint: the networks and, for this project's files, where
    in training it was saved (the reference's files record no position: those fields are None)."""

    nets: dict[str, dict]
    source: str
    total_iters: int | None = None
    epoch: int | None = None  # the epoch in progress when saved (the next one, after an epoch's end)
    epoch_samples: int | None = None  # samples of ``epoch`` already done
    options: dict = field(default_factory=dict)
    averaged: dict[str, dict] = field(default_factory=dict)  # --ema_decay: the generators' moving averages

    def weights(self, use_averages: bool = True) -> tuple[dict[str, dict], list[str]]:
        """The networks to test with: the moving averages (``--ema_decay``) in place of the raw
        weights they average, unless ``use_averages`` is False (``--no_ema``); and the names of the
        networks taken from the averages."""
        if not use_averages or not self.averaged:
            return self.nets, []
        return {**self.nets, **self.averaged}, sorted(self.averaged)

    def describe(self, averaged: list[str]) -> str:
        """``loaded <file>``, plus which networks are moving averages: the one log line test.py
        and export.py print."""
        if averaged:
            return f"loaded {self.source}: the moving averages of {', '.join(averaged)} (--no_ema: the raw weights)"
        if self.averaged:
            return f"loaded {self.source}: raw weights (--no_ema; it also holds moving averages)"
        return f"loaded {self.source}"


def load_tagged(run_dir: Path, tag: str, keys: list[str]) -> tuple[dict, str]:
    """(state, source) for checkpoint ``tag`` of a run: the whole state of our ``<tag>.pth``, else
    ``{"nets": ...}`` from the reference's per-network files ``<tag>_net_<key>.pth`` (weights
    only). Neither: a ``UserError`` listing the tags that do exist."""
    path = checkpoint_path(run_dir, tag)
    if path.is_file():
        return load_checkpoint(path), str(path)
    if keys and all(reference_net_file(run_dir, tag, key).is_file() for key in keys):
        return {"nets": load_reference_nets(run_dir, tag, keys)}, str(reference_net_file(run_dir, tag, "*"))
    tags = available_tags(run_dir) if Path(run_dir).is_dir() else []
    where = f"available: {', '.join(tags)}" if tags else f"{run_dir} holds no checkpoints"
    raise UserError(f"no checkpoint '{tag}' in {run_dir} ({where}); pick one with --epoch (iter_<n>: --load_iter n)")


def load_inference_checkpoint(run_dir: Path, tag: str, keys: list[str]) -> InferenceCheckpoint:
    """Networks for test time from ``<tag>.pth``, else from the reference's ``<tag>_net_<key>.pth``."""
    state, source = load_tagged(run_dir, tag, keys)
    return InferenceCheckpoint(
        state["nets"],
        source,
        state.get("total_iters"),
        state.get("epoch"),
        state.get("epoch_samples"),
        state.get("options", {}),
        state.get("ema", {}).get("nets", {}),
    )


def same_networks(a: dict[str, dict], b: dict[str, dict]) -> bool:
    """Whether two {network: state dict} mappings hold identical tensors."""
    if a.keys() != b.keys() or any(a[k].keys() != b[k].keys() for k in a):
        return False
    return all(torch.equal(a[net][key], b[net][key]) for net in a for key in a[net])
