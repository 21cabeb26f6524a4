"""sRGB <-> CIE Lab, computed as scikit-image's ``color.rgb2lab`` / ``color.lab2rgb`` compute them
(D65 white, 2-degree observer), so colorization data and results match the reference's, which
converts with scikit-image, without making scikit-image a runtime dependency.

Their conventions, kept here on purpose even where other libraries differ:

- sRGB companding with the 0.04045 / 0.0031308 thresholds and exponent 2.4; the sRGB -> XYZ matrix
  with six decimals (``XYZ_FROM_RGB``) and its numerical inverse for the way back;
- the white point (0.95047, 1.0, 1.08883) and the Lab constants 0.008856, 7.787, 16/116 and
  0.2068966 (the rounded CIE values, not the exact 216/24389 and 24389/3132);
- out of gamut: Lab -> XYZ clips a negative z (the b* side: ``(L + 16) / 116 - b / 200 < 0``) to 0
  before cubing, and the final RGB is clipped to [0, 1]. Nothing else is clipped: rgb -> Lab takes
  whatever values it is given.

Two forms: NumPy arrays with channels last (scikit-image's layout; integer images are scaled to
[0, 1] by ``1 / max`` as its ``img_as_float`` does; float64 throughout), and torch tensors with
channels at dimension -3 (CHW or NCHW, on any device; computed in the tensor's dtype, so pass
float64 for scikit-image's precision). The colorization data's network scaling (L / 50 - 1 and
ab / 110, as the reference) is here too, so the dataset and the model share it.
"""

from __future__ import annotations

import numpy as np
import torch

# sRGB (IEC 61966-2-1) primaries, D65, as scikit-image writes them
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])  # scikit-image's D65, 2-degree observer (Y = 1)

_LINEAR_RGB_LIMIT = 0.04045  # companded sRGB below this is linear: c / 12.92
_COMPANDED_LIMIT = 0.0031308  # linear sRGB below this is companded linearly: 12.92 c
_EPSILON = 0.008856  # (6/29)^3, rounded: below it f(t) is linear
_KAPPA_SLOPE = 7.787  # (29/6)^2 / 3, rounded
_OFFSET = 16.0 / 116.0
_F_LIMIT = 0.2068966  # 6/29, rounded: f(t) above it came from the cube root

# The network's scaling of the colorization data (the reference's): L in [0, 100] -> [-1, 1],
# ab in about [-110, 110] -> about [-1, 1].
L_CENTER = 50.0
AB_SCALE = 110.0


# ---- NumPy, channels last ------------------------------------------------------------------------


def _as_float_image(rgb: np.ndarray) -> np.ndarray:
    """float64 copy of an RGB image; unsigned integers scaled to [0, 1] as ``img_as_float64``
    scales them (multiplied by ``1 / max``, which can differ from dividing in the last bit)."""
    rgb = np.asarray(rgb)
    if rgb.shape[-1:] != (3,):
        raise ValueError(f"an RGB image needs 3 channels in its last dimension, got shape {rgb.shape}")
    if rgb.dtype.kind == "u":
        return np.multiply(rgb, 1.0 / np.iinfo(rgb.dtype).max, dtype=np.float64)
    if rgb.dtype.kind in "bi":
        raise ValueError(f"RGB images are unsigned integers or floats in [0, 1], got {rgb.dtype}")
    return rgb.astype(np.float64, copy=True)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (channels last; uint8/uint16, or floats in [0, 1]) -> CIE Lab, float64: L in [0, 100],
    a and b about [-128, 127]. Equals ``skimage.color.rgb2lab(rgb)`` to float64 rounding."""
    arr = _as_float_image(rgb)
    # sRGB companding undone: linear RGB
    mask = arr > _LINEAR_RGB_LIMIT
    arr[mask] = np.power((arr[mask] + 0.055) / 1.055, 2.4)
    arr[~mask] /= 12.92
    # linear RGB -> XYZ, relative to the white point
    xyz = (arr @ XYZ_FROM_RGB.T) / WHITE_D65
    mask = xyz > _EPSILON
    xyz[mask] = np.cbrt(xyz[mask])
    xyz[~mask] = _KAPPA_SLOPE * xyz[~mask] + _OFFSET
    fx, fy, fz = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (channels last) -> sRGB float64 in [0, 1]. Equals ``skimage.color.lab2rgb(lab)`` to
    float64 rounding, out-of-gamut colours included (a negative z clipped to 0, RGB clipped to
    [0, 1]); unlike it, it does not warn about the clipped z."""
    lab = np.asarray(lab, dtype=np.float64)
    if lab.shape[-1:] != (3,):
        raise ValueError(f"a Lab image needs 3 channels in its last dimension, got shape {lab.shape}")
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = lab[..., 1] / 500.0 + fy
    fz = np.maximum(fy - lab[..., 2] / 200.0, 0.0)  # scikit-image clips a negative z, and only z
    xyz = np.stack([fx, fy, fz], axis=-1)
    mask = xyz > _F_LIMIT
    xyz[mask] = np.power(xyz[mask], 3.0)
    xyz[~mask] = (xyz[~mask] - _OFFSET) / _KAPPA_SLOPE
    arr = (xyz * WHITE_D65) @ RGB_FROM_XYZ.T
    mask = arr > _COMPANDED_LIMIT
    arr[mask] = 1.055 * np.power(arr[mask], 1 / 2.4) - 0.055
    arr[~mask] *= 12.92
    return np.clip(arr, 0.0, 1.0)


# ---- torch, channels at dim -3 -------------------------------------------------------------------


def _matrix(matrix: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(matrix, dtype=like.dtype, device=like.device)


def _apply_matrix(matrix: np.ndarray, image: torch.Tensor) -> torch.Tensor:
    """``matrix`` applied to the colour of every pixel of a (..., 3, H, W) tensor."""
    return torch.einsum("ij,...jhw->...ihw", _matrix(matrix, image), image)


def _per_channel(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return _matrix(values, like).view(3, 1, 1)


def _check_channels(image: torch.Tensor, what: str) -> None:
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"{what} tensor needs 3 channels at dimension -3 (CHW or NCHW), got {tuple(image.shape)}")


def rgb_to_lab_tensor(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], (..., 3, H, W) -> CIE Lab, the same shape and dtype (``rgb_to_lab``'s math)."""
    _check_channels(rgb, "an RGB")
    linear = torch.where(
        rgb > _LINEAR_RGB_LIMIT, ((rgb.clamp(min=_LINEAR_RGB_LIMIT) + 0.055) / 1.055) ** 2.4, rgb / 12.92
    )
    t = _apply_matrix(XYZ_FROM_RGB, linear) / _per_channel(WHITE_D65, rgb)
    f = torch.where(t > _EPSILON, t.clamp(min=_EPSILON) ** (1.0 / 3.0), _KAPPA_SLOPE * t + _OFFSET)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb_tensor(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab, (..., 3, H, W) -> sRGB in [0, 1], the same shape and dtype (``lab_to_rgb``'s math)."""
    _check_channels(lab, "a Lab")
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp(min=0.0)], dim=-3)
    t = torch.where(f > _F_LIMIT, f**3, (f - _OFFSET) / _KAPPA_SLOPE)
    linear = _apply_matrix(RGB_FROM_XYZ, t * _per_channel(WHITE_D65, lab))
    rgb = torch.where(
        linear > _COMPANDED_LIMIT, 1.055 * linear.clamp(min=_COMPANDED_LIMIT) ** (1 / 2.4) - 0.055, 12.92 * linear
    )
    return rgb.clamp(0.0, 1.0)


# ---- the colorization data's scaling ---------------------------------------------------------------


def lab_to_network(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab (..., 3, H, W) -> (L / 50 - 1, ab / 110): the colorization input (1 channel, in [-1, 1])
    and target (2 channels), in the tensor's dtype."""
    return lab[..., :1, :, :] / L_CENTER - 1.0, lab[..., 1:, :, :] / AB_SCALE


def network_to_lab(light: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """The inverse of ``lab_to_network``: (L channel in [-1, 1], ab / 110) -> Lab."""
    return torch.cat([(light + 1.0) * L_CENTER, ab * AB_SCALE], dim=-3)
