"""The speed switches every model shares: mixed precision, memory format, compilation, fused Adam.

``--amp bf16|fp16`` runs the forwards under ``torch.autocast`` (convolutions in the low
precision; the weights, the optimizer and its moments stay fp32). fp16 also scales the losses
with a ``GradScaler`` so small gradients do not flush to zero; bf16 has fp32's range and needs
none. Losses are computed in fp32 (``fp32``), and norm layers accumulate their statistics in
fp32 inside their kernels. ``--channels_last`` stores activations and weights NHWC, the layout
tensor cores and oneDNN prefer. ``--compile`` hands each network to ``torch.compile``
(``reduce-overhead`` adds CUDA graphs: one launch per step instead of thousands, which is what
batch-1 CycleGAN on a fast GPU needs).

With every switch off (the defaults) a step is the reference's math; the one change that is
always on is the fused Adam kernel, which computes the same update in one pass over the
parameters instead of several (``adam``; tests/test_fast_path.py holds it to 1e-6).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
import torch.nn as nn

from util.errors import UserError

AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


class FastPath:
    """The switches of one run, resolved for its device: a context for forwards, the gradient
    scaler, and what to do to a network once it is built."""

    def __init__(self, device: torch.device, amp: str = "none", channels_last: bool = False, compile: str = "none"):
        if amp not in AMP_DTYPES:
            raise UserError(f"--amp {amp}: choose from {', '.join(AMP_DTYPES)}")
        if compile not in COMPILE_MODES:
            raise UserError(f"--compile {compile}: choose from {', '.join(COMPILE_MODES)}")
        if compile == "reduce-overhead" and device.type != "cuda":
            raise UserError("--compile reduce-overhead uses CUDA graphs: it needs a GPU (use --compile default)")
        self.device = device
        self.amp = amp
        self.dtype = AMP_DTYPES[amp]
        self.channels_last = channels_last
        self.compile_mode = compile
        # Disabled, the scaler is a pass-through: scale(loss) is loss, step(opt) is opt.step().
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    @classmethod
    def from_options(cls, opt: object, device: torch.device) -> FastPath:
        """The run's ``--amp``, ``--channels_last`` and ``--compile`` (absent ones: off)."""
        return cls(
            device,
            amp=getattr(opt, "amp", "none") or "none",
            channels_last=bool(getattr(opt, "channels_last", False)),
            compile=getattr(opt, "compile", "none") or "none",
        )

    def warning(self) -> str | None:
        """A line for the user when a switch will slow this run down instead of speeding it up:
        ``--amp`` on a CPU without native instructions for its type (no AVX512-BF16/AMX, as
        oneDNN reports it), where every low-precision convolution is emulated (on this project's
        AVX2 machine a bf16 3x3 convolution ran about 90x slower than in fp32)."""
        if self.device.type != "cpu" or self.dtype is None:
            return None
        if native_low_precision(self.dtype):
            return None
        return (
            f"--amp {self.amp}: this CPU has no native {self.amp} instructions (oneDNN), so its "
            f"{self.amp} convolutions are emulated and much slower than fp32; leave --amp off here"
        )

    @property
    def enabled(self) -> bool:
        return self.dtype is not None or self.channels_last or self.compile_mode != "none"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the forwards run in: autocast to ``--amp``'s dtype, or nothing."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare_net(self, net: nn.Module) -> nn.Module:
        """A built network in the run's memory format (in place; parameters keep their identity)."""
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        return net

    def prepare_input(self, images: torch.Tensor) -> torch.Tensor:
        """A batch on the device, in the networks' memory format."""
        images = images.to(self.device, non_blocking=True)
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def compile(self, net: nn.Module) -> nn.Module:
        """``torch.compile(net)`` in ``--compile``'s mode, or ``net`` itself. The wrapper shares the
        parameters, so optimizers built on ``net`` keep working and checkpoints (``unwrap``)
        keep their keys."""
        if self.compile_mode == "none":
            return net
        return torch.compile(net, mode=None if self.compile_mode == "default" else self.compile_mode)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.step(optimizer)

    def update(self) -> None:
        """Once per training step, after every optimizer has stepped (fp16: adapts the scale)."""
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler.is_enabled() and state:
            self.scaler.load_state_dict(state)


LOW_PRECISION = (torch.bfloat16, torch.float16)


def native_low_precision(dtype: torch.dtype) -> bool:
    """Whether oneDNN runs ``dtype`` (bf16 / fp16) convolutions natively on this CPU."""
    check = {
        torch.bfloat16: "_is_mkldnn_bf16_supported",
        torch.float16: "_is_mkldnn_fp16_supported",
    }.get(dtype)
    query = getattr(torch.ops.mkldnn, check, None) if check else None
    try:
        return bool(query()) if query is not None else True  # an older torch that cannot say: no warning
    except RuntimeError:
        return True


def upcast(x: torch.Tensor) -> torch.Tensor:
    """A bf16/fp16 tensor as float32, any other as it is: losses and what is stored or shown
    (pools, visuals, test outputs) never stay in autocast's low precision."""
    return x.float() if x.dtype in LOW_PRECISION else x


def fused_supported(params: Iterable[torch.Tensor]) -> bool:
    """torch's fused Adam runs on CPU and CUDA tensors of floating types."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam (eps 1e-8, no weight decay, as the reference) with the fused kernel where it runs:
    one pass over each parameter instead of a chain of elementwise kernels (on this 2-core CPU
    the update of CycleGAN's 28M parameters drops from about 22 to 9 ms per step)."""
    params = list(params)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused_supported(params) or None)


def prefer_fused(optimizer: torch.optim.Optimizer) -> None:
    """After ``load_state_dict``: a checkpoint's param groups carry the saving run's choice of
    kernel; this run's (``adam``) wins, as its --lr and --beta1 do."""
    fused = fused_supported(p for group in optimizer.param_groups for p in group["params"])
    for group in optimizer.param_groups:
        if "fused" in group:
            group["fused"] = fused or None
            if fused:
                group["foreach"] = None
    if fused:  # the fused kernel takes its step counts as float tensors on the parameters' device
        for p, state in optimizer.state.items():
            step = state.get("step")
            if torch.is_tensor(step) and (step.device != p.device or step.dtype != torch.float32):
                state["step"] = step.to(p.device, torch.float32)


@contextlib.contextmanager
def inference_context() -> Iterator[None]:
    """Test-time forwards: no autograd bookkeeping at all (tensors made here never need it)."""
    with torch.inference_mode():
        yield
