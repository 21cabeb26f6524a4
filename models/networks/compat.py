"""Compatibility with the reference codebase's checkpoints, next to the networks they describe.

- ``patch_reference_state``: checkpoints saved by PyTorch < 0.4 carry InstanceNorm running
  statistics that the (stat-less) InstanceNorm layers have not had since; they are dropped, as
  the reference's loader does.
- ``reference_bias_free_keys``: under ``--norm none`` the reference builds its norm-tied convs
  without a bias (its ``use_bias`` is True only for instance norm; the first and last conv of the
  PatchGAN, the ResNet's final 7x7 conv and the U-Net's outermost up-conv always have one). Ours
  keep those biases (``layers.conv_bias``), so such a file lacks exactly these keys: it is loaded
  with them set to zero, which computes the same function, and training goes on to learn them.
- ``load_net_state``: strict loading with a one-line error that names the likely flag. A ResNet
  block's second conv sits at index 6 of its ``conv_block`` with dropout and at 5 without (see
  ``ResnetBlock``), so a conv weight at the other index means the ``--no_dropout`` flag differs.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.networks.generators import ResnetBlock
from models.networks.layers import NORM_TIED
from util.errors import UserError

# index of a ResnetBlock's second conv in its conv_block, by dropout (pad, conv, norm, ReLU,
# [dropout], pad, conv, norm)
RESNET_SECOND_CONV = {True: 6, False: 5}


def patch_reference_state(state_dict: dict, net: nn.Module) -> dict:
    """Drop InstanceNorm statistics our InstanceNorm layers do not have (PyTorch < 0.4 files)."""
    state_dict = dict(state_dict)
    modules = dict(net.named_modules())
    for key in list(state_dict):
        owner, _, attr = key.rpartition(".")
        module = modules.get(owner)
        if isinstance(module, nn.modules.instancenorm._InstanceNorm):
            if attr == "num_batches_tracked" or (
                attr in ("running_mean", "running_var") and getattr(module, attr) is None
            ):
                del state_dict[key]
    return state_dict


def has_norm_layers(net: nn.Module) -> bool:
    """Whether ``net`` normalises anywhere (``--norm none`` leaves only ``nn.Identity`` slots)."""
    norms = (nn.modules.instancenorm._InstanceNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    return any(isinstance(m, norms) for m in net.modules())


def reference_bias_free_keys(net: nn.Module) -> list[str]:
    """The bias keys of ``net`` that the reference's ``--norm none`` build does not have: the
    biases of the convs marked ``NORM_TIED``, when ``net`` has no norm layers (with instance norm
    the reference has them too; with batch norm neither has them). Empty for other networks."""
    if has_norm_layers(net):
        return []
    return [
        f"{name}.bias"
        for name, module in net.named_modules()
        if getattr(module, NORM_TIED, False) and getattr(module, "bias", None) is not None
    ]


def fill_reference_norm_none_biases(state_dict: dict, net: nn.Module) -> tuple[dict, list[str]]:
    """``(state_dict, filled keys)``: a file in the reference's ``--norm none`` layout (every key
    of ``net`` present except exactly ``reference_bias_free_keys(net)``) gets those biases as zeros;
    any other file comes back unchanged, with no keys filled."""
    own = net.state_dict()
    missing = [key for key in own if key not in state_dict]
    absent = reference_bias_free_keys(net)
    if not missing or sorted(missing) != sorted(absent) or any(key not in own for key in state_dict):
        return state_dict, []
    state_dict = dict(state_dict)
    for key in missing:
        state_dict[key] = torch.zeros_like(own[key])
    return state_dict, missing


def dropout_hint(net: nn.Module, state_dict: dict) -> str:
    """'; ...' when the file's ResNet blocks were built with the other dropout setting."""
    for prefix, module in net.named_modules():
        if not isinstance(module, ResnetBlock):
            continue
        has_dropout = any(isinstance(m, nn.Dropout) for m in module.conv_block)
        other = RESNET_SECOND_CONV[not has_dropout]
        weight = state_dict.get(f"{prefix}.conv_block.{other}.weight")
        if weight is not None and weight.dim() == 4:  # a conv where this network has none
            if has_dropout:
                return "; the checkpoint was trained without dropout: add --no_dropout"
            return "; the checkpoint was trained with dropout: remove --no_dropout"
    return ""


def mismatch_hint(net: nn.Module, state_dict: dict) -> str:
    own = net.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong_shape = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if wrong_shape:
        k = wrong_shape[0]
        parts.append(
            f"{len(wrong_shape)} shape mismatches (e.g. {k}: {tuple(state_dict[k].shape)} in the file, "
            f"{tuple(own[k].shape)} here)"
        )
    hint = dropout_hint(net, state_dict)
    if not hint and any("running_mean" in k for k in missing + unexpected):
        hint = "; the norm type differs: check --norm"
    elif not hint and (wrong_shape or missing or unexpected):
        hint = "; check --netG/--netD, --ngf/--ndf, --norm and --input_nc/--output_nc"
    return "; ".join(parts) + hint


def load_net_state(net: nn.Module, state_dict: dict, source: str) -> list[str]:
    """Strictly load ``state_dict`` into ``net``; a one-line ``UserError`` if it does not fit.
    Returns the bias keys set to zero for a file in the reference's ``--norm none`` layout
    (``fill_reference_norm_none_biases``; the caller says so), else an empty list."""
    state_dict = patch_reference_state(state_dict, net)
    state_dict, filled = fill_reference_norm_none_biases(state_dict, net)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError:
        raise UserError(f"{source} does not fit the network: {mismatch_hint(net, state_dict)}") from None
    return filled
