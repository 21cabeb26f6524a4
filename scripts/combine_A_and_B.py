"""Make a pix2pix (``--dataset_mode aligned``) dataset from two folders of paired images.

    python scripts/combine_A_and_B.py --fold_A ./A --fold_B ./B --fold_AB ./datasets/mine

``fold_A`` and ``fold_B`` hold the same split folders (``train/``, ``val/``, ``test/``, ...) with
the same file names: ``A/train/1.jpg`` pairs with ``B/train/1.jpg``. Each pair is written side by
side, A on the left, to ``fold_AB/<split>/<A's name>`` (the format the name says, PNG lossless;
written atomically). ``--use_AB`` pairs ``x_A.png`` with ``x_B.png`` in one folder per split and
writes ``x.png``. An A image without its B is skipped with a message and counted; a pair of
different heights, or a missing folder, is a one-line error (exit status 2). The reference's CLI
(it used OpenCV; this uses PIL, images decoded as the training code decodes them, to RGB).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from util.errors import UserError, one_line  # noqa: E402
from util.fileio import atomic_write  # noqa: E402
from util.image import is_image_file, load_image  # noqa: E402


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    out: Path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Write each image of fold_A next to its pair in fold_B (A | B).")
    parser.add_argument("--fold_A", required=True, help="input folder of A images, one sub-folder per split")
    parser.add_argument("--fold_B", required=True, help="input folder of B images, the same splits and names")
    parser.add_argument("--fold_AB", required=True, help="output folder: <fold_AB>/<split>/<name>")
    parser.add_argument("--num_imgs", type=int, default=1000000, help="at most this many pairs per split")
    parser.add_argument("--use_AB", action="store_true", help="pair <x>_A.<ext> with <x>_B.<ext>, write <x>.<ext>")
    parser.add_argument("--no_multiprocessing", action="store_true", help="combine in this process only")
    return parser.parse_args(argv)


def splits_of(fold_A: Path) -> list[str]:
    """The split folders of ``fold_A`` (sorted; hidden entries skipped)."""
    return sorted(p.name for p in fold_A.iterdir() if p.is_dir() and not p.name.startswith("."))


def plan_split(
    fold_A: Path, fold_B: Path, fold_AB: Path, split: str, num_imgs: int, use_AB: bool
) -> tuple[list[Pair], list[str]]:
    """The pairs of one split (at most ``num_imgs``, in name order) and the skipped A files' messages."""
    names = sorted(
        p.name for p in (fold_A / split).iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith(".")
    )
    if use_AB:
        names = [name for name in names if "_A." in name]
    pairs, skipped = [], []
    for name in names[: max(num_imgs, 0)]:
        b_name = name.replace("_A.", "_B.") if use_AB else name
        out_name = name.replace("_A.", ".") if use_AB else name
        b_path = fold_B / split / b_name
        if not b_path.is_file():
            skipped.append(f"skipped {fold_A / split / name}: no {b_path}")
            continue
        pairs.append(Pair(fold_A / split / name, b_path, fold_AB / split / out_name))
    return pairs, skipped


def combine(pair: Pair) -> Path:
    """Write A | B for one pair, atomically, in the format of the output's extension."""
    a, b = load_image(pair.a, 3), load_image(pair.b, 3)
    if a.height != b.height:
        raise UserError(
            f"{pair.a} ({a.width}x{a.height}) and {pair.b} ({b.width}x{b.height}) have different heights: "
            "resize one of them"
        )
    ab = Image.new("RGB", (a.width + b.width, a.height))
    ab.paste(a, (0, 0))
    ab.paste(b, (a.width, 0))
    image_format = Image.registered_extensions().get(pair.out.suffix.lower(), "PNG")
    options = {"quality": 95} if image_format == "JPEG" else {}  # OpenCV's default, as the reference wrote
    return atomic_write(pair.out, lambda f: ab.save(f, format=image_format, **options))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        fold_A, fold_B, fold_AB = Path(args.fold_A), Path(args.fold_B), Path(args.fold_AB)
        for flag, folder in (("--fold_A", fold_A), ("--fold_B", fold_B)):
            if not folder.is_dir():
                raise UserError(f"{flag} {folder} is not a directory")
        splits = splits_of(fold_A)
        if not splits:
            raise UserError(f"--fold_A {fold_A} holds no split folders (train/, val/, test/, ...)")
        workers = 1 if args.no_multiprocessing else max(1, os.cpu_count() or 1)
        total = skipped_total = 0
        for split in splits:
            if not (fold_B / split).is_dir():
                print(f"skipped split {split}: no {fold_B / split}")
                continue
            pairs, skipped = plan_split(fold_A, fold_B, fold_AB, split, args.num_imgs, args.use_AB)
            for message in skipped:
                print(message)
            if workers > 1 and len(pairs) > 1:
                with ProcessPoolExecutor(min(workers, len(pairs))) as pool:
                    list(pool.map(combine, pairs, chunksize=16))
            else:
                for pair in pairs:
                    combine(pair)
            print(f"{split}: {len(pairs)} pairs written to {fold_AB / split}, {len(skipped)} skipped (no B image)")
            total, skipped_total = total + len(pairs), skipped_total + len(skipped)
        print(f"done: {total} pairs written, {skipped_total} skipped")
        return 0
    except UserError as e:
        print(f"combine_A_and_B.py: error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
