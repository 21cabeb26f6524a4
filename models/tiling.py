"""Running a generator on images of any size: padding to the network's size multiple, and tiled
inference for images whose activations do not fit in memory.

Tiling with instance normalisation needs care: every InstanceNorm layer normalises with the mean
and variance of its whole input, so a tile run on its own would be normalised with its own
statistics and neighbouring tiles would disagree (visible seams, shifted colours). ``run_tiled``
therefore first measures, per normalisation layer, the statistics of the whole image - exactly,
tile by tile and layer by layer (``tiled_stats``), or faster from one forward pass on a copy of
at most ``stats_size`` px (``measure_stats``) - then runs the tiles with every layer normalised by
those shared statistics (forward hooks: the networks' classes and state-dict keys are untouched).
Statistics from a downscaled copy were measured to be poor (scripts/bench_tiling.py: a 4x smaller
copy gives tiles as far from the untiled output as no shared statistics at all): deep layers'
statistics depend on the image's scale. Batch norm in train mode (test.py's default without --eval,
as the reference) normalises with the statistics of its batch, i.e. of the whole image: it is
treated like instance norm (its running statistics, unused in train mode, are updated by every tile
as by any train-mode forward). Batch norm in eval mode uses its running statistics and needs
nothing. Dropout in train mode draws independent masks per tile, so overlapping tiles differ there
as any two runs would.

Outputs of overlapping tiles are blended with weights that ramp linearly across the middle of the
overlap on the sides a tile shares with a neighbour (``_ramp``) and are normalised to sum to one at
every pixel. A ResNet's receptive field is wider than any useful overlap, so tiled output is close
to, not equal to, the untiled output; larger tiles and overlaps bring it closer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from util.errors import UserError


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """``images`` padded at the bottom and right to sides that are multiples of ``multiple``, by
    reflection (replication where a side is too short to reflect); crop back with ``[..., :h, :w]``."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return images
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)


def check_tiling(tile: int, overlap: int, multiple: int) -> None:
    """One-line errors for tile settings no network can use."""
    if tile < 0 or overlap < 0:
        raise UserError(f"--tile {tile} and --tile_overlap {overlap} must not be negative")
    if tile == 0:
        return
    if tile < multiple or tile % multiple:
        raise UserError(f"--tile {tile} must be a multiple of this network's size multiple {multiple}")
    if overlap >= tile:
        raise UserError(f"--tile_overlap {overlap} must be smaller than --tile {tile}")
    if tile - overlap < multiple:
        raise UserError(
            f"--tile {tile} minus --tile_overlap {overlap} must be at least the network's size multiple {multiple}"
        )


def _normalised_layers(net: nn.Module) -> list[nn.Module]:
    """The layers whose output depends on statistics of the whole input."""
    layers = []
    for module in net.modules():
        if isinstance(module, nn.modules.instancenorm._InstanceNorm):
            if module.training or not module.track_running_stats:
                layers.append(module)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            if module.training or not module.track_running_stats:
                layers.append(module)
    return layers


def _layer_stats(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, biased variance) as the layer computes them, shaped to broadcast over (N, C, H, W)."""
    x = x.float()
    dims = (2, 3) if isinstance(module, nn.modules.instancenorm._InstanceNorm) else (0, 2, 3)
    var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)
    return mean, var


def _normalise(module: nn.Module, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    out = (x.float() - mean) * torch.rsqrt(var + module.eps)
    if module.affine:
        out = out * module.weight.float().view(1, -1, 1, 1) + module.bias.float().view(1, -1, 1, 1)
    return out.to(x.dtype)


@contextmanager
def _hooked(layers: list[nn.Module], hook: Callable) -> Iterator[None]:
    handles = [layer.register_forward_hook(hook) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def measure_stats(
    net: nn.Module, images: torch.Tensor, multiple: int, max_side: int = 0
) -> dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """Each whole-input-normalised layer's (mean, var) for ``images`` (padded to the multiple), from
    one forward pass; on a copy downscaled (area-averaged) to a longer side of ``max_side`` when the
    image is larger (0: never downscale) - the statistics are then estimates."""
    height, width = images.shape[-2:]
    if max_side and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        images = F.interpolate(images, size=size, mode="area")
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        stats[module] = _layer_stats(module, inputs[0])

    with _hooked(_normalised_layers(net), record):
        net(pad_to_multiple(images, multiple))
    return stats


def tile_starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Start offsets of tiles of ``tile`` covering ``length`` (both multiples of ``multiple``), each
    overlapping the next by at least ``overlap``; starts are multiples of ``multiple`` so every tile
    sees the same stride-2 sampling grid as the whole image would."""
    if length <= tile:
        return [0]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(size: int, starts: list[int], index: int, tile: int) -> torch.Tensor:
    """1-D blending weights of tile ``index``. Over the part it shares with the previous/next tile
    the weight ramps linearly across the middle half and is (nearly) 0 on the outer quarter, next
    to the tile's edge: there the tile's own reflection padding stands in for the image's real
    neighbours and its output is least like the whole image's (measured: on a 9-block ResNet this
    halves the mean and max difference to the untiled output compared with a ramp over the whole
    overlap). Strictly positive, so normalising the sum never divides by 0."""
    weight = torch.ones(size)
    position = torch.arange(size, dtype=torch.float32) + 0.5
    if index > 0 and (shared := starts[index - 1] + tile - starts[index]) > 0:
        weight = torch.minimum(weight, (position - shared / 4) / (shared / 2))
    if index < len(starts) - 1 and (shared := starts[index] + tile - starts[index + 1]) > 0:
        weight = torch.minimum(weight, (size - position - shared / 4) / (shared / 2))
    return weight.clamp(min=1e-6)


def _owned(starts: list[int], tile: int, length: int, multiple: int) -> list[tuple[int, int]]:
    """A partition of ``[0, length)`` among the tiles: each owns the part closest to its middle
    (boundaries at the overlaps' middles, on multiples of ``multiple`` so they fall on whole pixels
    at every resolution of the network)."""
    bounds = [0]
    for previous, start in zip(starts, starts[1:], strict=False):
        bounds.append((start + previous + tile) // 2 // multiple * multiple)
    bounds.append(length)
    return list(zip(bounds, bounds[1:], strict=False))


def _tiles(padded: torch.Tensor, tile: int, overlap: int, multiple: int) -> Iterator[tuple[int, int, int, int]]:
    """(top, left, row index, column index) of every tile, row by row."""
    full_h, full_w = padded.shape[-2:]
    rows, cols = tile_starts(full_h, tile, overlap, multiple), tile_starts(full_w, tile, overlap, multiple)
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            yield top, left, i, j


class _Stop(Exception):
    """Ends a forward pass once the layer being measured has seen its input."""


def tiled_stats(
    net: nn.Module, padded: torch.Tensor, multiple: int, tile: int, overlap: int
) -> dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """Every whole-input-normalised layer's exact statistics over the whole (padded) image at full
    resolution, never holding more than one tile's activations: layer by layer in execution order,
    a tiled pass normalises the layers before it with their measured statistics, sums the layer's
    input over the part of each tile that tile owns (each pixel once) and stops there. Costs about
    half a tiled pass per normalisation layer; exact up to tile-edge effects on the owned parts."""
    full_h, full_w = padded.shape[-2:]
    rows, cols = tile_starts(full_h, tile, overlap, multiple), tile_starts(full_w, tile, overlap, multiple)
    own_rows, own_cols = _owned(rows, tile, full_h, multiple), _owned(cols, tile, full_w, multiple)
    tile_h, tile_w = min(tile, full_h), min(tile, full_w)
    order: list[nn.Module] = []

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        order.append(module)

    with _hooked(_normalised_layers(net), record):  # execution order, from one tile
        net(padded[..., :tile_h, :tile_w])
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    state: dict = {}  # the layer being measured, its running sums and the current tile

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if module is not state["target"]:
            return _normalise(module, inputs[0], *stats[module])
        x, (top, left, i, j), sums = inputs[0], state["tile"], state["sums"]
        h_scale, w_scale = x.shape[-2] / tile_h, x.shape[-1] / tile_w
        (r0, r1), (c0, c1) = own_rows[i], own_cols[j]
        region = x[
            ...,
            round((r0 - top) * h_scale) : round((r1 - top) * h_scale),
            round((c0 - left) * w_scale) : round((c1 - left) * w_scale),
        ].double()
        dims = (2, 3) if isinstance(module, nn.modules.instancenorm._InstanceNorm) else (0, 2, 3)
        sums[0] = sums[0] + region.sum(dim=dims, keepdim=True)
        sums[1] = sums[1] + region.square().sum(dim=dims, keepdim=True)
        sums[2] += region.numel() // math.prod(region.shape[d] for d in (0, 1) if d not in dims)
        raise _Stop

    for target in dict.fromkeys(order):
        state.update(target=target, sums=[0.0, 0.0, 0])
        with _hooked([*stats, target], hook):
            for top, left, i, j in _tiles(padded, tile, overlap, multiple):
                state["tile"] = (top, left, i, j)
                try:
                    net(padded[..., top : top + tile_h, left : left + tile_w])
                except _Stop:
                    pass
        total, squares, count = state["sums"]
        mean = total / count
        stats[target] = (mean.float(), (squares / count - mean.square()).clamp(min=0).float())
    return stats


def run_tiled(
    net: nn.Module,
    images: torch.Tensor,
    multiple: int,
    tile: int,
    overlap: int,
    shared_stats: bool = True,
    stats_size: int = 0,
) -> torch.Tensor:
    """``net(images)`` computed tile by tile (see the module docstring); the output has the input's
    height and width. The shared statistics: ``stats_size`` 0, exact, measured tile by tile
    (``tiled_stats``: memory of one tile, about half a tiled pass per normalisation layer); N > 0,
    from one whole-image forward pass on the image, downscaled to a longer side of N when it is
    larger (``measure_stats``: fast, but estimates from a downscaled copy can be far off - see
    scripts/bench_tiling.py). ``shared_stats=False`` is naive tiling (each tile normalised by itself),
    kept to measure what the shared statistics buy."""
    check_tiling(tile, overlap, multiple)
    height, width = images.shape[-2:]
    padded = pad_to_multiple(images, multiple)
    if not shared_stats:
        stats = {}
    elif stats_size:
        stats = measure_stats(net, images, multiple, stats_size)
    else:
        stats = tiled_stats(net, padded, multiple, tile, overlap)
    full_h, full_w = padded.shape[-2:]
    rows = tile_starts(full_h, tile, overlap, multiple)
    cols = tile_starts(full_w, tile, overlap, multiple)
    tile_h, tile_w = min(tile, full_h), min(tile, full_w)

    def apply(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return _normalise(module, inputs[0], *stats[module])

    out: torch.Tensor | None = None
    total = torch.zeros(1, 1, full_h, full_w, device=images.device)
    with _hooked(list(stats), apply):
        for top, left, i, j in _tiles(padded, tile, overlap, multiple):
            result = net(padded[..., top : top + tile_h, left : left + tile_w]).float()
            if out is None:
                out = torch.zeros(result.shape[0], result.shape[1], full_h, full_w, device=images.device)
            weight = _ramp(tile_h, rows, i, tile)[:, None] * _ramp(tile_w, cols, j, tile)[None, :]
            out[..., top : top + tile_h, left : left + tile_w] += result * weight.to(images.device)
            total[..., top : top + tile_h, left : left + tile_w] += weight.to(images.device)
            del result
    assert out is not None
    return (out / total)[..., :height, :width]


def run_generator(
    net: nn.Module,
    images: torch.Tensor,
    multiple: int,
    tile: int = 0,
    overlap: int = 0,
    stats_size: int = 0,
) -> torch.Tensor:
    """``net`` applied to ``images`` of any size: padded by reflection to the network's size
    multiple and cropped back, so the output has exactly the input's height and width; tiled when
    ``tile`` > 0 and the padded image is larger than one tile."""
    height, width = images.shape[-2:]
    if tile and max(math.ceil(height / multiple), math.ceil(width / multiple)) * multiple > tile:
        return run_tiled(net, images, multiple, tile, overlap, stats_size=stats_size)
    return net(pad_to_multiple(at_least(images, MIN_SIDE), multiple))[..., :height, :width]


# The smallest side a generator is run on. A resnet generator (size multiple 4) normalises and
# reflection-pads its features at 1/4 scale, which needs 2x2 of them: a 1x1 or 3x2 image (a
# thumbnail in a scraped folder, translated whole with --preprocess none) failed with a traceback
# from instance norm. Smaller images are padded up (replicating their edge) and the output cropped
# back; U-Nets (multiples of 128 and 256) are padded further than this anyway.
MIN_SIDE = 8


def at_least(images: torch.Tensor, side: int) -> torch.Tensor:
    """``images`` padded at the bottom and right (replicating the edge) to sides of at least ``side``."""
    height, width = images.shape[-2:]
    if height >= side and width >= side:
        return images
    return F.pad(images, (0, max(0, side - width), 0, max(0, side - height)), mode="replicate")
