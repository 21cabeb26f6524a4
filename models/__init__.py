"""Models, each registered under its ``--model`` name.

To add a model: copy ``template_model.py`` to ``<name>_model.py``, register the class with
``@MODELS.register("<name>")`` and import the module below. ``--model <name>`` then works;
the class's ``modify_options`` hook adds its options. Networks live in ``models/networks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from models import (  # noqa: F401  (registration)
    adain_model,
    colorization_model,
    cut_model,
    cycle_gan_model,
    fast_style_model,
    onnx_model,
    pix2pix_model,
    template_model,
    test_model,
)
from models.base_model import MODELS, BaseModel

__all__ = ["MODELS", "BaseModel", "create_model"]

if TYPE_CHECKING:
    from options import Options


def create_model(opt: Options, device: torch.device) -> BaseModel:
    """The model named by ``--model``, built on ``device`` (with ``--ema_decay``, its generators'
    averages start at their initial weights)."""
    model = MODELS.get(opt.model)(opt, device)
    model.start_ema()
    return model
