"""Translate a held-out set with a trained model.

    python test.py --dataroot ./datasets/horse2zebra --name h2z                 # testA and testB
    python test.py --dataroot ./datasets/horse2zebra --name h2z --epoch 50      # another checkpoint
    python test.py --dataroot ./imgs --name horse2zebra_pretrained --model test --no_dropout

Every image is translated (``--num_test`` limits it). Results go to
``results/<name>/<phase>_<epoch>/images/<stem>_<label>.png`` with an ``index.html``. The
trained run's architecture is read from ``checkpoints/<name>/opt.yaml``, so the flags used
for training need not be repeated. When the dataset has ground truth (``<phase>A_gt/``: the
true B image of each ``<phase>A`` image, as the demo dataset has), L1, PSNR and SSIM of the
translations are reported and written to ``metrics.json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from data.image_folder import is_image_file, load_image
from data.single_dataset import SingleDataset
from data.transforms import sample_rng
from metrics.paired import compare_files
from models import BaseModel, create_model
from options import Options, format_options, gpu_ids, parse_options
from util.checkpoint import load_inference_nets
from util.errors import UserError, one_line
from util.fileio import atomic_write_text
from util.html import HTMLPage
from util.image import save_image, tensor_to_uint8
from util.training import seed_everything, select_device


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(parse_options(argv, is_train=False, prog="test.py"))
    except UserError as e:
        print(f"test.py: error: {one_line(e)}", file=sys.stderr)
        return 2


def run(opt: Options) -> int:
    print(format_options(opt))
    if opt.dry_run:
        print("dry run: nothing translated")
        return 0
    device = select_device(gpu_ids(opt.gpu_ids))
    seed_everything(opt.seed)
    model = create_model(opt, device)
    run_dir = Path(opt.checkpoints_dir) / opt.name
    nets, source = load_inference_nets(run_dir, opt.epoch, [model.checkpoint_key(n) for n in model.nets])
    model.load_networks(nets, source)
    # Like the reference, test in train mode unless --eval (it matters for batch norm and dropout).
    model.eval() if opt.eval else model.train()
    print(f"loaded {source}")

    out_dir = Path(opt.results_dir) / opt.name / f"{opt.phase}_{opt.epoch}"
    page = HTMLPage(out_dir, f"{opt.name}: {opt.phase}, epoch {opt.epoch}")
    report: dict[str, dict] = {}
    for side in model.test_sides:
        folder = source_folder(opt, side)
        channels = opt.input_nc if side == "A" else opt.output_nc
        dataset = SingleDataset(opt, folder=folder, channels=channels, train=False)
        gt_folder = folder.with_name(folder.name + "_gt")
        translated_label = model.translation_label(side)
        gt_label = translated_label.replace("fake", "gt")
        page.add_header(f"{folder} ({min(len(dataset), opt.num_test)} images)")
        compared: dict[str, list[tuple[Path, Path]]] = {}  # label -> (result file, ground-truth file)
        for stem, files in translate_folder(model, side, dataset, opt, out_dir):
            gt_file = save_ground_truth(gt_folder, stem, dataset, out_dir / "images" / f"{stem}_{gt_label}.png")
            if gt_file is not None:
                input_label = next(iter(files))  # the do-nothing baseline
                for label in (translated_label, input_label):
                    compared.setdefault(label, []).append((files[label], gt_file))
                files[gt_label] = gt_file
            items = [(f"{stem}_{label}", str(path.relative_to(out_dir))) for label, path in files.items()]
            page.add_images(items, width=opt.display_winsize)
        if compared:
            scores = {label: compare_files(pairs) for label, pairs in compared.items()}
            report[side] = {"images": len(compared[translated_label]), "ground_truth": str(gt_folder), **scores}
    if report:
        atomic_write_text(out_dir / "metrics.json", json.dumps(report, indent=2) + "\n")
        print_report(report)
        page.add_header("Translation vs ground truth")
        page.add_table(
            ["side", "images", "compared", "L1", "PSNR (dB)", "SSIM"],
            [
                [side, r["images"], label, f"{m['l1']:.4f}", f"{m['psnr']:.2f}", f"{m['ssim']:.4f}"]
                for side, r in report.items()
                for label, m in r.items()
                if isinstance(m, dict)
            ],
        )
    index = page.save()
    print(f"results: {index}")
    return 0


def source_folder(opt: Options, side: str) -> Path:
    """The folder translated for ``side``: <dataroot>/<phase>A or B (swapped by --direction BtoA);
    ``--model test`` translates --dataroot itself."""
    if opt.model == "test":
        return opt.dataroot
    folder_side = side if opt.direction == "AtoB" else {"A": "B", "B": "A"}[side]
    folder = opt.dataroot / f"{opt.phase}{folder_side}"
    if not folder.is_dir():
        raise UserError(f"{folder} does not exist: test.py translates {opt.phase}A/ and {opt.phase}B/ of --dataroot")
    return folder


def batches(loader: DataLoader, batch_size: int) -> Iterator[list[dict]]:
    """Consecutive items of equal image size, at most ``batch_size`` at a time."""
    batch: list[dict] = []
    for item in loader:
        if batch and (len(batch) == batch_size or item["A"].shape != batch[0]["A"].shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def translate_folder(
    model: BaseModel, side: str, dataset: SingleDataset, opt: Options, out_dir: Path
) -> list[tuple[str, dict[str, Path]]]:
    """Translate the images of ``dataset``; save every output; return (stem, {label: file})."""
    # Batch statistics would mix images: batch-norm in train mode runs one image at a time.
    uses_batch_stats = not opt.eval and any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for net in model.nets.values() for m in net.modules()
    )
    batch_size = 1 if uses_batch_stats else opt.test_batch_size
    count = int(min(len(dataset), opt.num_test))
    subset = torch.utils.data.Subset(dataset, range(count))
    loader = DataLoader(subset, batch_size=None, num_workers=opt.num_threads)
    rows = []
    for batch in batches(loader, batch_size):
        images = torch.stack([item["A"] for item in batch])
        outputs = model.inference(side, images)
        for i, item in enumerate(batch):
            stem = result_stem(Path(item["A_paths"]), dataset.folder)
            files = {}
            for label, tensor in outputs.items():
                files[label] = save_result(tensor[i], out_dir / "images" / f"{stem}_{label}.png", opt.aspect_ratio)
            rows.append((stem, files))
    return rows


def result_stem(path: Path, folder: Path) -> str:
    """File stem, with sub-folders folded in (a/b/x.png -> a__b__x) so names never collide."""
    relative = path.relative_to(folder).with_suffix("")
    return "__".join(relative.parts)


def save_result(image: torch.Tensor, path: Path, aspect_ratio: float) -> Path:
    array = tensor_to_uint8(image)
    if aspect_ratio != 1.0:  # as the reference: stretch the width or the height
        h, w = array.shape[:2]
        size = (int(w * aspect_ratio), h) if aspect_ratio > 1 else (w, int(h / aspect_ratio))
        array = np.asarray(Image.fromarray(array).resize(size, Image.BICUBIC))
    return save_image(array, path)


def save_ground_truth(gt_folder: Path, stem: str, dataset: SingleDataset, path: Path) -> Path | None:
    """The ground-truth image for ``stem``, preprocessed exactly like the inputs (test-time
    preprocessing is deterministic) and saved next to the results, so metrics compare like
    with like. None when there is none."""
    if not gt_folder.is_dir():
        return None
    candidates = sorted(p for p in gt_folder.glob(f"{stem.replace('__', '/')}.*") if is_image_file(p))
    if not candidates:
        return None
    image = dataset.preprocess(load_image(candidates[0], 3), sample_rng(0, 0, 0))
    return save_image(image, path)


def print_report(report: dict[str, dict]) -> None:
    for side, result in report.items():
        print(f"ground truth for side {side} ({result['images']} images, {result['ground_truth']}):")
        for label, m in result.items():
            if isinstance(m, dict):
                print(f"  {label:>8} vs truth: L1 {m['l1']:.4f}  PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")


if __name__ == "__main__":
    sys.exit(main())
