"""The reference's flag names from before its 2019 renaming, for a one-line error that names the
current flag (``--niter 100`` -> "use --n_epochs"). Users arrive with old scripts and blog posts;
argparse alone would only say "unrecognized arguments"."""

from __future__ import annotations

from collections.abc import Sequence

# old flag -> what to write instead (the reference's own renames, 2017-2019)
CLASSIC_FLAGS: dict[str, str] = {
    "--niter": "--n_epochs",
    "--niter_decay": "--n_epochs_decay",
    "--loadSize": "--load_size",
    "--fineSize": "--crop_size",
    "--batchSize": "--batch_size",
    "--nThreads": "--num_threads",
    "--which_epoch": "--epoch",
    "--which_direction": "--direction",
    "--which_model_netG": "--netG",
    "--which_model_netD": "--netD",
    "--resize_or_crop": "--preprocess",
    "--how_many": "--num_test",
    "--ntest": "--num_test",
    "--display_single_pane_ncols": "--display_ncols",
    "--identity": "--lambda_identity",
    "--no_lsgan": "--gan_mode vanilla",
}


def classic_flag_problem(argv: Sequence[str]) -> str | None:
    """The message for the first old flag name in ``argv`` (``--niter`` or ``--niter=5``), else None."""
    for token in argv:
        if token == "--":
            break
        flag = token.split("=", 1)[0]
        if flag in CLASSIC_FLAGS:
            return f"{flag} is the reference's flag name from before 2019: use {CLASSIC_FLAGS[flag]}"
    return None
