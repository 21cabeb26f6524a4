"""Generate the embedded demo dataset: procedurally drawn "day -> night" scenes.

Domain A is *day*: light-blue sky gradient, yellow sun, green ground, bright house walls with
dark windows. Domain B is *night*: the same kind of scene with a dark navy sky, a pale moon where
the sun would be, dark ground, darkened walls and windows lit warm yellow. A scene is a handful of
parameters drawn from a seeded RNG (horizon, hills, sun, 1-3 houses, maybe trees) and both styles
are deterministic renderings of it, so the change between domains is mostly a global colour shift
plus a few local edits (sun -> moon, windows light up): easy to see and learnable.

Training data is unpaired, as CycleGAN expects: trainA and trainB are drawn from independent RNG
streams, so trainB holds night renderings of *other* scenes. The test split additionally carries
paired ground truth, which makes translation quality measurable without a pretrained network::

    trainA/     day scenes                     0000.png, 0001.png, ...
    trainB/     night scenes (other scenes)
    testA/      day scenes
    testB/      night scenes (other scenes than testA)
    testA_gt/   for each testA/<stem>.png the NIGHT rendering of the same scene (domain B)
    testB_gt/   for each testB/<stem>.png the DAY rendering of the same scene (domain A)
    manifest.json

Convention (read by test.py): ``<phase>A_gt`` is the ground-truth domain-B rendering of
``<phase>A`` and ``<phase>B_gt`` the domain-A rendering of ``<phase>B``, with the same file names.
manifest.json records the generator version, the arguments, the counts and the scores of the
"do-nothing" translation (input compared with its ground truth), computed with metrics.paired the
same way test.py scores a model, so any trained model has a baseline to beat.

Usage::

    python scripts/make_demo_dataset.py --out datasets/demo_day2night [--size 64] [--n_train 400]
        [--n_test 40] [--seed 0] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Runnable as `python scripts/make_demo_dataset.py` from anywhere: the repo root must be importable.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from metrics.paired import l1, load_unit, psnr  # noqa: E402
from util.errors import UserError  # noqa: E402

GENERATOR = "make_demo_dataset"
# Bump whenever scene sampling or rendering changes: an existing dataset with another version is
# regenerated instead of being reported as up to date.
GENERATOR_VERSION = 1
DEFAULT_OUT = REPO_ROOT / "datasets" / "demo_day2night"

# Render at SUPERSAMPLE x the output size and box-filter down: every output pixel becomes the
# mean of SUPERSAMPLE^2 samples (area coverage), i.e. clean anti-aliased edges without the
# ringing a sharpening filter such as Lanczos puts around the bright moon on a dark sky.
SUPERSAMPLE = 4

# One RNG stream per folder. Each scene gets its own generator seeded by (tag, seed, stream,
# index), so trainA/trainB/testA/testB never share a scene, and scene i of a split stays the same
# whatever the other counts are.
STREAMS = {"trainA": 0, "trainB": 1, "testA": 2, "testB": 3}
_SEED_TAG = 0x64A7  # keeps these streams apart from any other seed sequence in the project

Color = tuple[int, int, int]

# Day palettes. Walls avoid saturated yellow so the yellow sun stays the only "sun-coloured" thing.
WALL_COLORS: tuple[Color, ...] = (
    (246, 238, 222),  # cream
    (236, 204, 164),  # sand
    (222, 126, 104),  # terracotta
    (172, 202, 230),  # light blue
    (250, 250, 246),  # white
    (204, 228, 184),  # pale green
)
ROOF_COLORS: tuple[Color, ...] = ((172, 62, 52), (116, 82, 70), (82, 90, 104))
SKY_DAY = ((74, 146, 222), (184, 222, 246))  # top, horizon
SKY_NIGHT = ((7, 11, 34), (34, 46, 98))
SUN = (255, 214, 58)
SUN_HALO = (255, 244, 170)
MOON = (238, 238, 218)
MOON_HALO = (120, 132, 186)
GROUND_DAY = ((112, 188, 84), (70, 142, 58))  # at horizon, at bottom
HILL_DAY = ((88, 160, 86), (104, 174, 92), (76, 146, 90))
WINDOW_DAY = (48, 60, 82)
WINDOW_LIT = (255, 212, 100)
DOOR = (112, 72, 42)
TRUNK = (108, 76, 48)
CROWN = ((50, 132, 60), (38, 112, 62))  # round tree, pine

# Night = the day colour scaled down, with blue kept relatively strongest, plus a little navy.
# One shared map for walls, roofs, ground, trees: the bulk of the translation is a global colour
# transform; only sky, sun/moon and windows are re-coloured individually.
_NIGHT_GAIN = np.array([0.24, 0.29, 0.42])
_NIGHT_OFFSET = np.array([5.0, 8.0, 22.0])


def night_color(color: Color) -> Color:
    """The night version of a day colour (walls, roofs, ground, trees)."""
    out = np.asarray(color, dtype=np.float64) * _NIGHT_GAIN + _NIGHT_OFFSET
    return tuple(int(v) for v in np.clip(np.round(out), 0, 255))  # type: ignore[return-value]


@dataclass(frozen=True)
class Hill:
    cx: float  # centre x, fraction of width
    half_width: float  # fraction of width
    height: float  # how far it rises above the horizon, fraction of height
    shade: int  # index into HILL_DAY


@dataclass(frozen=True)
class House:
    cx: float
    base: float  # y of the ground line, fraction of height (larger = nearer the viewer)
    width: float
    height: float  # wall height, without roof
    wall: int  # index into WALL_COLORS
    roof: int  # index into ROOF_COLORS
    gable: bool  # pitched roof, else flat
    chimney: bool
    window_cols: int
    window_rows: int
    door_offset: float  # door x as a fraction of the wall width, -0.3..0.3 from the centre


@dataclass(frozen=True)
class Tree:
    x: float
    base: float
    height: float  # total height including the crown
    pine: bool


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one scene; both styles are pure functions of it."""

    horizon: float  # y of the horizon, fraction of height
    sky_shift: float  # -1..1, small brightness variation of the sky gradient
    sun_x: float
    sun_y: float
    sun_r: float  # radius, fraction of the image size
    hills: tuple[Hill, ...]
    houses: tuple[House, ...]  # sorted back to front
    trees: tuple[Tree, ...]


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws scene ``index`` of ``split`` (one of STREAMS)."""
    return np.random.default_rng([_SEED_TAG, seed, STREAMS[split], index])


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random scene. Sizes are fractions of the image, so scenes are resolution-free."""
    horizon = float(rng.uniform(0.56, 0.70))
    sun_r = float(rng.uniform(0.06, 0.095))
    # the sun stays well inside the sky, clear of the image border
    sun_x = float(rng.uniform(0.12, 0.88))
    sun_y = float(rng.uniform(0.14, min(0.32, horizon - 0.2)))

    hills = tuple(
        Hill(
            cx=float(rng.uniform(-0.1, 1.1)),
            half_width=float(rng.uniform(0.25, 0.55)),
            height=float(rng.uniform(0.04, 0.13)),
            shade=int(rng.integers(len(HILL_DAY))),
        )
        for _ in range(int(rng.integers(1, 4)))
    )

    # Houses get one horizontal slot each so they overlap at most partly.
    n_houses = int(rng.integers(1, 4))
    slots = rng.permutation(n_houses)
    houses = []
    for slot in slots:
        depth = float(rng.uniform(0.1, 0.75))  # 0 = at the horizon, 1 = at the bottom edge
        scale = 0.65 + 0.7 * depth  # nearer houses are drawn larger
        width = float(rng.uniform(0.2, 0.29)) * scale
        centre = (slot + 0.5) / n_houses + float(rng.uniform(-0.12, 0.12)) / n_houses
        houses.append(
            House(
                cx=float(np.clip(centre, width / 2 + 0.02, 1 - width / 2 - 0.02)),
                base=horizon + depth * (0.97 - horizon),
                width=width,
                height=width * float(rng.uniform(0.6, 0.95)),
                wall=int(rng.integers(len(WALL_COLORS))),
                roof=int(rng.integers(len(ROOF_COLORS))),
                gable=bool(rng.random() < 0.75),
                chimney=bool(rng.random() < 0.5),
                window_cols=int(rng.integers(1, 4)),
                window_rows=int(rng.integers(1, 3)),
                door_offset=float(rng.uniform(-0.3, 0.3)),
            )
        )
    houses.sort(key=lambda h: h.base)  # painter's algorithm: far houses first

    trees = []
    if rng.random() < 0.7:
        for _ in range(int(rng.integers(1, 4))):
            depth = float(rng.uniform(0.05, 0.8))
            trees.append(
                Tree(
                    x=float(rng.uniform(0.04, 0.96)),
                    base=horizon + depth * (0.97 - horizon),
                    height=float(rng.uniform(0.14, 0.22)) * (0.65 + 0.7 * depth),
                    pine=bool(rng.random() < 0.4),
                )
            )
    trees.sort(key=lambda t: t.base)

    return Scene(
        horizon=horizon,
        sky_shift=float(rng.uniform(-1, 1)),
        sun_x=sun_x,
        sun_y=sun_y,
        sun_r=sun_r,
        hills=hills,
        houses=tuple(houses),
        trees=tuple(trees),
    )


def _vertical_gradient(height: int, width: int, y0: float, y1: float, top: Color, bottom: Color) -> np.ndarray:
    """HxWx3 float image whose rows go from ``top`` (at pixel row y0) to ``bottom`` (at y1)."""
    t = np.clip((np.arange(height, dtype=np.float64) + 0.5 - y0) / max(y1 - y0, 1e-6), 0, 1)
    rows = (1 - t)[:, None] * np.asarray(top, float) + t[:, None] * np.asarray(bottom, float)
    return np.broadcast_to(rows[:, None, :], (height, width, 3)).copy()


def _background(scene: Scene, night: bool, s: int) -> np.ndarray:
    """Sky, sun/moon glow and ground as an s x s x 3 float array (shapes are drawn on top)."""
    horizon_px = scene.horizon * s
    top, bottom = SKY_NIGHT if night else SKY_DAY
    # slight per-scene variation of the sky, the same relative change in both styles
    gain = 1 + 0.06 * scene.sky_shift
    top = tuple(min(255, c * gain) for c in top)
    img = _vertical_gradient(s, s, 0, horizon_px, top, bottom)  # type: ignore[arg-type]

    # Soft glow around the sun (warm) or the moon (cold): a Gaussian blend towards the halo colour.
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64) + 0.5
    dist2 = (xx - scene.sun_x * s) ** 2 + (yy - scene.sun_y * s) ** 2
    glow_r = scene.sun_r * s * (2.2 if night else 2.6)
    alpha = (0.55 if night else 0.7) * np.exp(-dist2 / (2 * glow_r**2))[..., None]
    halo = np.asarray(MOON_HALO if night else SUN_HALO, float)
    img = img * (1 - alpha) + halo * alpha

    ground_top, ground_bottom = GROUND_DAY
    if night:
        ground_top, ground_bottom = night_color(ground_top), night_color(ground_bottom)
    ground = _vertical_gradient(s, s, horizon_px, s, ground_top, ground_bottom)
    below = (np.arange(s) + 0.5 >= horizon_px)[:, None, None]
    return np.where(below, ground, img)


def _scale_color(color: Color, night: bool) -> Color:
    return night_color(color) if night else color


def _draw_house(draw: ImageDraw.ImageDraw, house: House, night: bool, s: int) -> None:
    x0, x1 = (house.cx - house.width / 2) * s, (house.cx + house.width / 2) * s
    y1 = house.base * s
    y0 = y1 - house.height * s
    w, h = x1 - x0, y1 - y0
    wall = _scale_color(WALL_COLORS[house.wall], night)
    roof = _scale_color(ROOF_COLORS[house.roof], night)

    overhang = 0.08 * w
    if house.gable:
        peak = y0 - 0.55 * h
        if house.chimney:
            cx0 = x0 + 0.68 * w
            draw.rectangle([cx0, peak + 0.15 * h, cx0 + 0.12 * w, y0], fill=roof)
        draw.polygon([(x0 - overhang, y0), (x1 + overhang, y0), ((x0 + x1) / 2, peak)], fill=roof)
    else:
        if house.chimney:
            cx0 = x0 + 0.2 * w
            draw.rectangle([cx0, y0 - 0.25 * h, cx0 + 0.12 * w, y0], fill=roof)
        draw.rectangle([x0 - overhang, y0 - 0.12 * h, x1 + overhang, y0 + 0.02 * h], fill=roof)
    draw.rectangle([x0, y0, x1, y1], fill=wall)

    # Door on the ground line; windows in a grid above it. At night the windows light up.
    door_w, door_h = 0.2 * w, 0.42 * h
    door_cx = x0 + w * (0.5 + house.door_offset)
    door = _scale_color(DOOR, night)
    draw.rectangle([door_cx - door_w / 2, y1 - door_h, door_cx + door_w / 2, y1], fill=door)

    window = WINDOW_LIT if night else WINDOW_DAY
    win_w = w / (house.window_cols + 0.8 * (house.window_cols + 1))
    gap_x = (w - house.window_cols * win_w) / (house.window_cols + 1)
    area_h = h - door_h - 0.08 * h  # windows sit above the door's top
    win_h = min(win_w * 1.1, 0.7 * area_h / house.window_rows)
    gap_y = (area_h - house.window_rows * win_h) / (house.window_rows + 1)
    for r in range(house.window_rows):
        wy0 = y0 + 0.06 * h + gap_y + r * (win_h + gap_y)
        for c in range(house.window_cols):
            wx0 = x0 + gap_x + c * (win_w + gap_x)
            draw.rectangle([wx0, wy0, wx0 + win_w, wy0 + win_h], fill=window)


def _draw_tree(draw: ImageDraw.ImageDraw, tree: Tree, night: bool, s: int) -> None:
    x, y1, h = tree.x * s, tree.base * s, tree.height * s
    trunk = _scale_color(TRUNK, night)
    crown = _scale_color(CROWN[1] if tree.pine else CROWN[0], night)
    draw.rectangle([x - 0.06 * h, y1 - 0.45 * h, x + 0.06 * h, y1], fill=trunk)
    if tree.pine:
        for k in range(3):  # three stacked triangles
            ty1 = y1 - 0.25 * h - k * 0.22 * h
            half = 0.32 * h * (1 - 0.22 * k)
            draw.polygon([(x - half, ty1), (x + half, ty1), (x, ty1 - 0.42 * h)], fill=crown)
    else:
        r = 0.3 * h
        draw.ellipse([x - r, y1 - h, x + r, y1 - h + 2 * r], fill=crown)


def render(scene: Scene, night: bool, size: int = 64) -> Image.Image:
    """Render ``scene`` as a ``size`` x ``size`` RGB image, in the night style if ``night``."""
    s = size * SUPERSAMPLE
    img = Image.fromarray(np.clip(np.round(_background(scene, night, s)), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)

    sx, sy, sr = scene.sun_x * s, scene.sun_y * s, scene.sun_r * s
    draw.ellipse([sx - sr, sy - sr, sx + sr, sy + sr], fill=MOON if night else SUN)

    # Hills: upper halves of ellipses centred on the horizon; the part below is ground anyway.
    hy = scene.horizon * s
    for hill in scene.hills:
        color = _scale_color(HILL_DAY[hill.shade], night)
        hw, hh = hill.half_width * s, hill.height * s
        draw.chord([hill.cx * s - hw, hy - hh, hill.cx * s + hw, hy + hh], 180, 360, fill=color)

    # Houses and trees back to front, so nearer objects cover farther ones.
    objects: list[House | Tree] = sorted([*scene.houses, *scene.trees], key=lambda o: o.base)
    for obj in objects:
        if isinstance(obj, House):
            _draw_house(draw, obj, night, s)
        else:
            _draw_tree(draw, obj, night, s)

    return img.resize((size, size), Image.Resampling.BOX)


def _stem_width(n: int) -> int:
    return max(4, len(str(n - 1)))


def _expected_counts(n_train: int, n_test: int) -> dict[str, int]:
    return {
        "trainA": n_train,
        "trainB": n_train,
        "testA": n_test,
        "testB": n_test,
        "testA_gt": n_test,
        "testB_gt": n_test,
    }


def _read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _up_to_date(out: Path, args: dict) -> dict | None:
    """The existing manifest if ``out`` holds a complete dataset made by this version with ``args``."""
    manifest = _read_manifest(out)
    if not manifest or manifest.get("generator") != GENERATOR:
        return None
    if manifest.get("version") != GENERATOR_VERSION or manifest.get("args") != args:
        return None
    # Cheap completeness check, so a folder someone has pruned by hand is regenerated.
    for folder, n in manifest.get("counts", {}).items():
        if len(list((out / folder).glob("*.png"))) != n:
            return None
    return manifest


def baseline_scores(source_dir: Path, gt_dir: Path) -> dict[str, float]:
    """Scores of the do-nothing translation: each source image against its ground truth.

    Uses metrics.paired's loader and metrics on the written 8-bit files and averages per-image
    values, which is how test.py scores a model.
    """
    l1s: list[float] = []
    psnrs: list[float] = []
    for src in sorted(source_dir.glob("*.png")):
        pred, target = load_unit(src), load_unit(gt_dir / src.name)
        l1s.append(l1(pred, target).item())
        psnrs.append(psnr(pred, target).item())
    return {"l1": float(np.mean(l1s)), "psnr": float(np.mean(psnrs))}


def _write_split(root: Path, seed: int, size: int, n: int, split: str, gt: str | None = None) -> None:
    """Write ``n`` scenes of ``split`` in its domain's style (and in the other style into ``gt``)."""
    night = split.endswith("B")
    (root / split).mkdir()
    if gt:
        (root / gt).mkdir()
    width = _stem_width(n)
    for i in range(n):
        scene = sample_scene(scene_rng(seed, split, i))
        name = f"{i:0{width}d}.png"
        render(scene, night, size).save(root / split / name)
        if gt:
            render(scene, not night, size).save(root / gt / name)


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` to ``out``, replacing an older dataset there."""
    if not out.exists():
        tmp.rename(out)
        return
    # A directory cannot be renamed over a non-empty one: set the old one aside first.
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def make_dataset(
    out: Path,
    seed: int = 0,
    size: int = 64,
    n_train: int = 400,
    n_test: int = 40,
    force: bool = False,
) -> dict:
    """Write the dataset to ``out`` (unless it is already there) and return its manifest."""
    out = Path(out)
    if size < 16:
        raise UserError(f"--size must be at least 16, got {size}")
    if n_train < 1 or n_test < 1:
        raise UserError(f"--n_train and --n_test must be at least 1, got {n_train} and {n_test}")
    args = {"seed": seed, "size": size, "n_train": n_train, "n_test": n_test}

    if not force:
        manifest = _up_to_date(out, args)
        if manifest is not None:
            print(f"{out} is up to date (generator version {GENERATOR_VERSION}, {args}); use --force to regenerate")
            return manifest
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and _read_manifest(out) is None)):
        # never delete something this script did not write
        raise UserError(f"{out} exists and is not a demo dataset (no manifest.json); remove it or pick another --out")

    # Build everything in a hidden sibling and rename it into place at the end: an interrupted
    # run leaves at worst a stray hidden folder, never a half dataset under the real name.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the dataset is an ordinary folder
        _write_split(tmp, seed, size, n_train, "trainA")
        _write_split(tmp, seed, size, n_train, "trainB")
        _write_split(tmp, seed, size, n_test, "testA", gt="testA_gt")
        _write_split(tmp, seed, size, n_test, "testB", gt="testB_gt")
        manifest = {
            "generator": GENERATOR,
            "version": GENERATOR_VERSION,
            "args": args,
            "domains": {"A": "day", "B": "night"},
            "gt_convention": "<phase>A_gt/<stem>.png is the domain-B rendering of <phase>A/<stem>.png; "
            "<phase>B_gt is the domain-A rendering of <phase>B",
            "counts": _expected_counts(n_train, n_test),
            # mean over images of metrics.paired.l1 / psnr ([0,1] scale, PSNR in dB, data range 1)
            "baseline_identity": {
                "testA": baseline_scores(tmp / "testA", tmp / "testA_gt"),
                "testB": baseline_scores(tmp / "testB", tmp / "testB_gt"),
            },
        }
        # The manifest is written last: a folder with a manifest is a complete dataset.
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _summary(out: Path, manifest: dict) -> str:
    counts = manifest["counts"]
    lines = [
        f"demo dataset (day -> night, {manifest['args']['size']}px) in {out}",
        "  " + ", ".join(f"{name} {n}" for name, n in counts.items()),
        "  do-nothing baseline (input vs ground truth):",
    ]
    for split, scores in manifest["baseline_identity"].items():
        lines.append(f"    {split} vs {split}_gt: L1 {scores['l1']:.4f}  PSNR {scores['psnr']:.2f} dB")
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate the procedural day -> night demo dataset (unpaired train, paired test ground truth).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dataset folder to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same arguments give identical files")
    parser.add_argument("--size", type=_positive_int, default=64, help="image width and height in pixels (>= 16)")
    parser.add_argument("--n_train", type=_positive_int, default=400, help="training images per domain")
    parser.add_argument("--n_test", type=_positive_int, default=40, help="test images per domain")
    parser.add_argument("--force", action="store_true", help="regenerate even if an up-to-date dataset exists")
    opt = parser.parse_args(argv)

    start = time.perf_counter()
    try:
        manifest = make_dataset(opt.out, opt.seed, opt.size, opt.n_train, opt.n_test, opt.force)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_summary(opt.out, manifest))
    print(f"  done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
