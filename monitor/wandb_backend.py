"""Weights & Biases view of a run (``--use_wandb``, ``--wandb_project_name``: the reference's flags).

One W&B run per training run, named after it (``--name``), in the project
``--wandb_project_name``, with the resolved options as its config. At step ``total_iters`` (as
in loss_log.jsonl) it gets the scalars ``loss/<name>``, ``lr``, ``time/compute_per_iter``,
``time/data_per_iter`` (every ``--print_freq``), ``metrics/<key>`` (every ``--eval_freq``
epochs) and the images ``visuals/<label>`` (every ``--display_freq``, like visdom). test.py
``--use_wandb`` makes a run of its own (job type ``test``): as in the reference, one step per
translated input with its images (``results/<label>``), then one step with each checkpoint's
scores (``metrics/<key>_<direction>``, ``truth/<label>_<l1|psnr|ssim>``).

Where its files go: ``dir=`` the run folder, so wandb writes ``checkpoints/<name>/wandb/``
(test.py: ``results/<name>/wandb/``), never the working directory.

Online or offline: ``WANDB_MODE`` (and ``wandb online``/``wandb offline``) are respected when set.
When they are not and nobody is logged in (no ``WANDB_API_KEY``, no ``wandb login``), the run
is logged offline instead of failing or prompting, and one line says how to upload it later
(``wandb sync <folder>``). No account is needed to train with ``--use_wandb``.

Resume: the run's id is kept in ``checkpoints/<name>/wandb_run.json``; ``--continue_train``
continues that W&B run (``resume="allow"``) instead of starting another. Steps go on from the
checkpoint's iteration. An online run that already holds later steps (logged after that
checkpoint by a run that crashed) keeps them: W&B cannot rewrite history, so the steps before
its last one are not sent again (an exact resume would log the same values anyway). An offline
resume writes a second ``offline-run-*`` folder with the same id; ``wandb sync`` uploads both.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import wandb
from tqdm import tqdm

from monitor.base import Backend, LogRecord
from monitor.trackers import metric_scalars, record_scalars
from util.errors import UserError
from util.fileio import atomic_write_text
from util.image import tensor_to_uint8

RUN_FILE = "wandb_run.json"  # {"id": ..., "project": ...}: the W&B run a --continue_train continues


def say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)  # keeps a progress bar intact


def has_credentials() -> bool:
    """Whether W&B credentials are configured (WANDB_API_KEY, ``wandb login``'s .netrc entry, a
    settings file), without prompting and without asking the server."""
    host = wandb.setup().settings.base_url
    try:
        # What wandb.init itself consults, minus the prompt; wandb.login(prompt=False) answers the
        # same but first asks the server for the user name (seconds, and it hangs offline).
        from wandb.sdk.lib.wbauth.authenticate import authenticate_session

        return authenticate_session(host=host, source="wandb.init()", prompt=False, update_session=False) is not None
    except (ImportError, AttributeError, TypeError):  # another wandb version: its public, slower way
        return bool(wandb.login(prompt=False, verify=False))
    except wandb.errors.AuthenticationError:
        return True  # a key is set but malformed: let wandb.init say what is wrong with it


def choose_mode() -> str | None:
    """``offline`` when no mode is set and nobody is logged in; None leaves it to wandb."""
    if os.environ.get("WANDB_MODE"):
        return None  # the user's choice
    if wandb.setup().settings.mode != "online":
        return None  # `wandb offline` / `wandb disabled` in a settings file
    return None if has_credentials() else "offline"


class WandbBackend(Backend):
    """Logs a run to W&B; see the module docstring."""

    def __init__(
        self,
        folder: str | Path,
        project: str,
        name: str,
        config: dict[str, object],
        resume: bool = False,
        job_type: str = "train",
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        run_file = self.folder / RUN_FILE
        run_id = json.loads(run_file.read_text(encoding="utf-8"))["id"] if resume and run_file.is_file() else None
        mode = choose_mode()
        try:
            self.run = wandb.init(
                project=project,
                name=name,
                config=config,
                dir=str(self.folder),
                id=run_id,
                resume="allow" if run_id else None,
                mode=mode,
                job_type=job_type,
                reinit="create_new",  # this backend's own run, whatever else the process has open
            )
        except Exception as exc:  # wandb.errors.*, a timeout reaching the server, ...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(
                f"--use_wandb: wandb could not start a run: {first} (WANDB_MODE=offline logs offline, "
                f"for `wandb sync` later)"
            ) from None
        if resume and run_id is not None:  # a changed --lr etc. of the resumed run replaces the old value
            self.run.config.update(config, allow_val_change=True)
        # Steps the W&B run already holds (an online resume) cannot be logged again.
        self.first_step = int(self.run.step or 0)
        self._skipped = False
        atomic_write_text(run_file, json.dumps({"id": self.run.id, "project": project}) + "\n")
        if mode == "offline":
            where = self.sync_dir
            say(
                f"wandb: not logged in (no WANDB_API_KEY or `wandb login`): logging offline to {where}; "
                f"upload it later with `wandb sync {where}`"
            )

    @property
    def sync_dir(self) -> Path:
        """The ``run-*`` / ``offline-run-*`` folder that ``wandb sync`` takes."""
        return Path(self.run.dir).parent

    def log_values(self, values: dict[str, object], step: int | None = None) -> None:
        """``run.log`` at ``step``; values at steps the W&B run already has are dropped (once said)."""
        if step is not None and step < self.first_step:
            if not self._skipped:
                self._skipped = True
                say(
                    f"wandb: run {self.run.id} already has steps up to {self.first_step - 1}; logging resumes there "
                    f"(loss_log.jsonl has every step)"
                )
            return
        self.run.log(values, step=step)

    def log(self, record: LogRecord) -> None:
        self.log_values(record_scalars(record), record.total_iters)

    def log_metrics(
        self, epoch: int, total_iters: int, metrics: dict[str, float], info: dict[str, object] | None = None
    ) -> None:
        if metrics:  # a failed evaluation: nothing to plot (loss_log.jsonl says why)
            self.log_values({**metric_scalars(metrics), "epoch": epoch}, total_iters)

    def display(self, epoch: int, total_iters: int, visuals: dict[str, torch.Tensor]) -> None:
        images = {
            f"visuals/{label}": wandb.Image(tensor_to_uint8(image), caption=f"{label} (epoch {epoch})")
            for label, image in visuals.items()
        }
        self.log_values(images, total_iters)

    def log_results(self, rows: list[tuple[str, dict[str, Path]]]) -> None:
        """test.py: result images as the reference logs them, one step per input with an image per
        label (``results/<label>``, captioned with the input's name). Not a ``wandb.Table``: a table
        of images is an artifact, staged outside the run folder (in WANDB_DATA_DIR)."""
        for stem, files in rows:
            self.log_values({f"results/{label}": wandb.Image(str(path), caption=stem) for label, path in files.items()})

    def close(self) -> None:
        self.run.finish()
