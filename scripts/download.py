"""Download the reference's published datasets and pretrained generators (no torch needed).

    bash scripts/download_cyclegan_dataset.sh horse2zebra        # datasets/horse2zebra/{trainA,...}
    bash scripts/download_pix2pix_dataset.sh facades             # datasets/facades/{train,val,test}
    bash scripts/download_cyclegan_model.sh horse2zebra          # checkpoints/horse2zebra_pretrained/latest_net_G.pth
    bash scripts/download_pix2pix_model.sh facades_label2photo   # checkpoints/facades_label2photo_pretrained/...
    python scripts/download.py SOURCE NAME [--force] [--datasets_dir DIR | --checkpoints_dir DIR]

SOURCE is one of cyclegan_dataset, pix2pix_dataset, cyclegan_model, pix2pix_model (the .sh
wrappers pass it). A file is downloaded to ``<file>.part`` and renamed only once complete;
after an interruption the same command resumes it (HTTP Range) or, when the server cannot
resume, starts it again. Archives are checked member by member before anything is unpacked;
a model must load as a state dict (``torch.load(weights_only=True)``, or its file signature
without torch). A target that is already there is left alone (``--force`` downloads it again and
replaces it only once the new one is complete).

Servers: CYCLEGAN_DATASETS_URL, PIX2PIX_DATASETS_URL, CYCLEGAN_MODELS_URL, PIX2PIX_MODELS_URL
override the base URL of each source (a mirror; http://, https:// or file://).

Exit status: 0 done (or nothing to do); 1 the download, archive or file failed, or the dataset
cannot be distributed (cityscapes); 2 usage error (unknown name or flag); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# util.catalog and util.download import no torch at start: this runs before any install.
from util.catalog import SOURCES, Source  # noqa: E402
from util.download import DownloadError, check_state_dict, fetch, unpack  # noqa: E402


def source_url(source: Source, name: str) -> str:
    base = os.environ.get(source.url_env) or source.base_url
    return f"{base.rstrip('/')}/{name}{source.suffix}"


def download_dataset(source: Source, name: str, datasets_dir: Path, force: bool) -> Path:
    """``datasets_dir/name`` from the source's archive (``datasets_dir/name.zip`` or ``.tar.gz``
    while it downloads and unpacks; removed afterwards)."""
    target = datasets_dir / name
    if target.is_dir() and any(target.iterdir()) and not force:
        print(f"{target} already exists; nothing to do (--force downloads it again)")
        return target
    datasets_dir.mkdir(parents=True, exist_ok=True)
    archive = datasets_dir / f"{name}{source.suffix}"
    if archive.is_file():  # complete (it is renamed from .part only then); a previous unpack failed
        print(f"unpacking {archive} (downloaded before)")
    else:
        fetch(source_url(source, name), archive)
    unpack(archive, target, name)
    folders = ", ".join(sorted(p.name for p in target.iterdir() if p.is_dir())) or "no folders"
    print(f"{name} is in {target} ({folders})")
    return target


def download_model(source: Source, name: str, checkpoints_dir: Path, force: bool) -> Path:
    """``checkpoints_dir/<name>_pretrained/latest_net_G.pth``, as the reference saves it (the file
    name test.py loads for ``--name <name>_pretrained``)."""
    target = checkpoints_dir / f"{name}_pretrained" / "latest_net_G.pth"
    if target.is_file() and not force:
        print(f"{target} already exists; nothing to do (--force downloads it again)")
        return target
    summary: list[str] = []
    fetch(source_url(source, name), target, validate=lambda part: summary.append(check_state_dict(part)))
    print(f"saved {target} ({summary[0]})")
    if source.key == "cyclegan_model":
        hint = f"--name {name}_pretrained --model test --no_dropout"
    else:
        hint = f"--name {name}_pretrained --model pix2pix (with --direction BtoA when it maps the B side to A)"
    print(f"translate with: python test.py --dataroot <images> {hint}")
    return target


def build_parser(source: Source) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=source.script,
        description=f"Download a {source.label}: {', '.join(source.names)}.",
        epilog=f"Server: {source.base_url} ({source.url_env} overrides it). Exit status: 0 done or nothing "
        "to do, 1 failed (run again to resume), 2 usage error.",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="one of the names above")
    parser.add_argument("--force", action="store_true", help="download again even when the target exists")
    if source.is_model:
        parser.add_argument("--checkpoints_dir", type=Path, default=Path("checkpoints"), help="default: ./checkpoints")
    else:
        parser.add_argument("--datasets_dir", type=Path, default=Path("datasets"), help="default: ./datasets")
    return parser


def usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SOURCES:
        return usage_error(f"the first argument must be one of {', '.join(SOURCES)}")
    source = SOURCES[argv[0]]
    args = build_parser(source).parse_args(argv[1:])  # a bad flag: argparse's usage and status 2
    valid = ", ".join(source.names)
    if args.name is None:
        return usage_error(f"name a {source.label}: {valid}")
    if args.name not in source.names:
        return usage_error(f"invalid choice: {args.name!r} is not a published {source.label} (choose from {valid})")
    if args.name in source.refused:
        print(f"error: {source.refused[args.name]}", file=sys.stderr)
        return 1
    try:
        if source.is_model:
            download_model(source, args.name, args.checkpoints_dir, args.force)
        else:
            download_dataset(source, args.name, args.datasets_dir, args.force)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the target folder cannot be written (permissions, a full disk)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume the download", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
