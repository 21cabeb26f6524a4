"""The device a process computes on, and seeding the global random generators."""

from __future__ import annotations

import random

import numpy as np
import torch

from util.errors import UserError


def select_device(gpu_ids: list[int], fixed_input_size: bool) -> torch.device:
    """The device for this process: the first GPU of ``gpu_ids``, or the CPU.

    ``fixed_input_size``: every batch has the same shape (a cropping ``--preprocess``). Only then
    does cuDNN's autotuner pay off; with varying sizes (scale_width, none) it would tune again
    for every new shape, which is slower than not tuning."""
    # fastest convolution algorithms; they are not deterministic, so GPU runs are reproducible
    # statistically but not bit for bit (CPU runs are)
    torch.backends.cudnn.benchmark = fixed_input_size
    if not gpu_ids:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        print("note: CUDA is not available; running on the CPU (pass --gpu_ids -1 to silence this)")
        return torch.device("cpu")
    if len(gpu_ids) > 1:
        raise UserError("one process trains on one GPU: pass a single --gpu_ids id")
    if gpu_ids[0] >= torch.cuda.device_count():
        raise UserError(f"--gpu_ids {gpu_ids[0]}: only {torch.cuda.device_count()} CUDA device(s) visible")
    device = torch.device(f"cuda:{gpu_ids[0]}")
    torch.cuda.set_device(device)  # so nothing (pinned-memory thread, new tensors) lands on cuda:0
    return device


def default_test_batch_size(device_type: str) -> int:
    """Images per forward at test time when ``--test_batch_size`` is not given. A GPU gains from
    batching; a CPU loses: a batch's activations outgrow the caches (resnet_9blocks at 256², two
    forwards per image, on this project's 2-core CPU: 1.57-1.71 s per image at batch 1, 1.97 s at
    batch 8; at 128², 0.44 against 0.49 s)."""
    return 8 if device_type == "cuda" else 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
