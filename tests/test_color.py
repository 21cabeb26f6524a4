"""util.color against scikit-image's rgb2lab / lab2rgb (the reference's conversions): random
images, every grey level, the primaries, out-of-gamut Lab, both the NumPy and the torch forms, and
the round trip. scikit-image is a test dependency only: the runtime code never imports it."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from skimage import color

from tests.conftest import REPO_ROOT
from util.color import (
    lab_to_network,
    lab_to_rgb,
    lab_to_rgb_tensor,
    network_to_lab,
    rgb_to_lab,
    rgb_to_lab_tensor,
)


def skimage_lab2rgb(lab: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # it warns about the negative z it clips; so do we, by testing it
        warnings.simplefilter("ignore")
        return color.lab2rgb(lab)


def chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, -3)))


def hwc(tensor: torch.Tensor) -> np.ndarray:
    return np.moveaxis(tensor.numpy(), -3, -1)


def all_grey_levels() -> np.ndarray:
    """Each of the 256 levels on each channel alone and as grey: the companding thresholds
    (0.04045 lies between levels 10 and 11) and both ends."""
    levels = np.arange(256, dtype=np.uint8)
    zero = np.zeros(256, np.uint8)
    rows = [np.stack([levels, levels, levels], -1)]
    rows += [np.stack([levels if c == i else zero for c in range(3)], -1) for i in range(3)]
    return np.stack(rows)  # 4 x 256 x 3


PRIMARIES = np.array(
    [
        [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0]],
        [[0, 0, 255], [0, 255, 255], [255, 0, 255], [255, 255, 0]],
    ],
    dtype=np.uint8,
)


def out_of_gamut_lab(rng: np.random.Generator) -> np.ndarray:
    """Lab values far outside sRGB: L below 0 and above 100, |a|, |b| up to 200 (many give a
    negative z, which scikit-image clips), next to in-gamut ones."""
    n = 96
    lab = np.stack([rng.uniform(-20, 120, (n, n)), rng.uniform(-200, 200, (n, n)), rng.uniform(-200, 200, (n, n))], -1)
    lab[0, :4] = [[0, 0, 0], [100, 0, 0], [50, 0, 300], [0, 0, 50]]  # black, white, z < 0, z < 0 at L 0
    return lab


def test_rgb_to_lab_equals_skimage_on_uint8_images() -> None:
    rng = np.random.default_rng(0)
    for image in (rng.integers(0, 256, (48, 40, 3), dtype=np.uint8), all_grey_levels(), PRIMARIES):
        expected = color.rgb2lab(image)
        np.testing.assert_allclose(rgb_to_lab(image), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(hwc(rgb_to_lab_tensor(chw(image / 255.0))), expected, rtol=0, atol=1e-9)


def test_rgb_to_lab_scales_other_dtypes_as_skimage() -> None:
    rng = np.random.default_rng(1)
    floats = rng.random((16, 16, 3))
    np.testing.assert_allclose(rgb_to_lab(floats), color.rgb2lab(floats), rtol=0, atol=1e-12)
    wide = rng.integers(0, 65536, (16, 16, 3), dtype=np.uint16)
    np.testing.assert_allclose(rgb_to_lab(wide), color.rgb2lab(wide), rtol=0, atol=1e-12)


def test_known_lab_values() -> None:
    """Independent of scikit-image: black is L 0, white L 100 with a, b near 0 (the D65 white; not
    exactly 0 with the six-decimal matrix: -0.0025, 0.0047), and the sRGB red's published Lab
    (about 53.24, 80.09, 67.20)."""
    lab = rgb_to_lab(PRIMARIES)
    np.testing.assert_allclose(lab[0, 0], [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(lab[0, 1], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[0, 2], [53.24, 80.09, 67.20], atol=0.01)


def test_lab_to_rgb_equals_skimage_in_and_out_of_gamut() -> None:
    rng = np.random.default_rng(2)
    lab = out_of_gamut_lab(rng)
    expected = skimage_lab2rgb(lab)
    assert (expected == 0).any() and (expected == 1).any()  # the clipping is exercised
    fz = (lab[..., 0] + 16) / 116 - lab[..., 2] / 200
    assert (fz < 0).sum() > 100  # so is the negative z
    np.testing.assert_allclose(lab_to_rgb(lab), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hwc(lab_to_rgb_tensor(chw(lab))), expected, rtol=0, atol=1e-12)
    # the Lab of real images, primaries included
    for image in (all_grey_levels(), PRIMARIES):
        in_gamut = color.rgb2lab(image)
        np.testing.assert_allclose(lab_to_rgb(in_gamut), skimage_lab2rgb(in_gamut), rtol=0, atol=1e-12)


def test_negative_z_is_clipped_not_the_rgb_alone() -> None:
    """A colour whose z is negative converts to what z = 0 gives (scikit-image's rule), which is
    not what clipping the RGB of the unclipped z would give."""
    lab = np.array([[[60.0, 20.0, 250.0]]])
    fy = (60.0 + 16) / 116
    at_zero_z = np.array([[[60.0, 20.0, 200 * fy]]])  # the b that puts z exactly at 0
    np.testing.assert_allclose(lab_to_rgb(lab), lab_to_rgb(at_zero_z), atol=1e-12)
    np.testing.assert_allclose(lab_to_rgb(lab), skimage_lab2rgb(lab), atol=1e-12)


def test_torch_batches_and_float32() -> None:
    """NCHW batches convert image by image alike; float32 stays within float32 precision."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    batch = torch.from_numpy(np.moveaxis(images / 255.0, -1, 1).copy())
    lab = rgb_to_lab_tensor(batch)
    assert lab.shape == batch.shape and lab.dtype == torch.float64
    for i in range(3):
        np.testing.assert_allclose(hwc(lab[i]), color.rgb2lab(images[i]), atol=1e-9)
    lab32 = rgb_to_lab_tensor(batch.float())
    assert lab32.dtype == torch.float32
    np.testing.assert_allclose(lab32.double().numpy(), lab.numpy(), atol=1e-3)
    np.testing.assert_allclose(lab_to_rgb_tensor(lab32).double().numpy(), batch.numpy(), atol=1e-5)


def test_round_trip() -> None:
    """rgb -> Lab -> rgb gives the colour back, over a 64-step grid of the whole RGB cube, to
    3e-4 of an 8-bit level (not to float64 rounding: scikit-image's rounded constants, 0.008856,
    7.787, 0.2068966, make the two directions disagree slightly near the linear segment), so an
    8-bit image comes back exactly."""
    steps = np.linspace(0, 255, 64).round().astype(np.uint8)
    cube = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(512, 512, 3)
    back = lab_to_rgb(rgb_to_lab(cube)) * 255
    assert np.abs(back - cube).max() < 3e-4
    assert np.array_equal(back.round(), cube)
    tensor_back = hwc(lab_to_rgb_tensor(rgb_to_lab_tensor(chw(cube / 255.0)))) * 255
    assert np.abs(tensor_back - cube).max() < 3e-4


def test_network_scaling() -> None:
    """The colorization scaling (the reference's L / 50 - 1, ab / 110) and its inverse."""
    lab = torch.tensor([[[[0.0, 100.0]], [[-110.0, 55.0]], [[110.0, 0.0]]]])  # 1 x 3 x 1 x 2
    light, ab = lab_to_network(lab)
    assert light.shape == (1, 1, 1, 2) and ab.shape == (1, 2, 1, 2)
    assert light.flatten().tolist() == [-1.0, 1.0]
    assert ab.flatten().tolist() == [-1.0, 0.5, 1.0, 0.0]
    assert torch.equal(network_to_lab(light, ab), lab)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_lab(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="3 channels"):
        lab_to_rgb(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_lab_tensor(torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError, match="unsigned integers or floats"):
        rgb_to_lab(np.zeros((4, 4, 3), np.int16))


def test_runtime_code_does_not_import_skimage() -> None:
    """scikit-image is a test dependency: the packages train.py and test.py import run without it."""
    code = (
        "import sys, util.color, data, models, engine.evaluation\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'skimage')\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
