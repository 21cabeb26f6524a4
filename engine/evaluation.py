"""Translate a held-out set with a loaded model and score the translations: one protocol for
``test.py`` (per checkpoint, ``--epoch all`` included) and ``train.py --eval_freq``.

For each test side of the model (``<phase>A/`` and ``<phase>B/``, swapped by ``--direction BtoA``):

- every image is translated at the test-time size and saved as ``images/<stem>_<label>.png``,
  with an ``index.html`` of all of them;
- with ground truth, L1/PSNR/SSIM of the translation and of the untouched input are reported. The
  ground truth is carried by the test items themselves (paired data, e.g. the B half of an
  aligned A | B image: the model outputs it under ``model.ground_truth_label(side)``, saved as
  ``<stem>_real_B.png``), or found in a folder next to the inputs (``<phase>A_gt/``: the true B
  image of each ``<phase>A`` image, saved as ``<stem>_gt_B.png``);
- with ``--metrics``, per direction (``AtoB``, ``BtoA``, named after the dataset's folders):
  FID/KID of the translations against the real images of the target domain (``--fid_real``),
  computed by ``metrics.evaluate_dirs`` with one Inception network per process and the real
  images' features cached on disk; paired metrics (L1/PSNR/SSIM) against the ground truth;
  style metrics (content_loss/style_loss) of each output against its content input and the style
  image(s) its test item carries (``data.base_dataset.STYLE_KEYS``), scored in memory while
  translating (``translate_folder``; a folder of files does not say which style made an output),
  on one VGG-19 per process built here from ``models.networks.perceptual`` (``metrics`` may not
  import ``models``) and handed to ``metrics.style.StyleScorer``.

Everything goes to ``metrics.json`` in the result folder, with the Inception weights used (file,
SHA-256, where they came from) next to FID/KID values, and the VGG-19 weights and the style
metrics' protocol next to theirs. A metric that fails is a one-line
``UserError`` (test.py stops with it); during training it skips that evaluation with a warning.
"""

from __future__ import annotations

import glob
import json
import random
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm import tqdm

from data import DATASETS, create_dataset
from data.base_dataset import OTHER, STYLE_KEYS, ImageFolderDataset, folder_letter
from data.image_folder import is_image_file, load_image
from data.transforms import sample_rng
from engine.checkpoint import (
    InferenceCheckpoint,
    available_tags,
    load_inference_checkpoint,
    rng_state,
    same_networks,
    set_rng_state,
)
from metrics import (
    FIDInceptionV3,
    PairedMetric,
    StyleMetric,
    StyleScorer,
    UnpairedMetric,
    evaluate_dirs,
    get_metrics,
    list_images,
    load_inception,
    score_pairs,
)
from models import BaseModel
from models.networks.perceptual import FeatureExtractor, default_weights_path, perceptual_backbone
from options import Options, evaluation_options, metric_names
from util.device import default_test_batch_size, seed_everything
from util.errors import UserError, one_line
from util.fileio import atomic_write_text, file_sha256, flush_to_disk
from util.html import HTMLPage
from util.image import save_image, tensor_to_uint8

# ---- which checkpoints ----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointToTest:
    tag: str  # "5", "latest", "iter_1000"
    epoch: float | None  # epochs completed when it was saved (where it goes on a plot); None: unknown
    checkpoint: InferenceCheckpoint


def checkpoints_to_test(run_dir: Path, epoch: str, keys: list[str]) -> Iterator[CheckpointToTest]:
    """The ``--epoch`` checkpoint; for ``all``, every ``<n>.pth`` (or the reference's ``<n>_net_*.pth``)
    in epoch order, then ``latest`` unless its networks equal the last epoch checkpoint's (they do at
    the end of a finished run: ``latest`` is then not evaluated twice). Loaded one at a time.
    No ``keys`` (a model whose network is a file of its own, ``--model onnx``): nothing to load,
    one pass under the ``--epoch`` tag."""
    if not keys:
        yield CheckpointToTest(epoch, None, InferenceCheckpoint({}, "no checkpoint (the model's own file)"))
        return
    if epoch != "all":
        checkpoint = load_inference_checkpoint(run_dir, epoch, keys)
        yield CheckpointToTest(epoch, epochs_done(epoch, checkpoint, None), checkpoint)
        return
    tags = available_tags(run_dir) if Path(run_dir).is_dir() else []
    epoch_tags = [tag for tag in tags if tag.isdigit()]
    if not epoch_tags and "latest" not in tags:
        raise UserError(f"--epoch all: no epoch checkpoints (<n>.pth) and no latest.pth in {run_dir}")
    last: CheckpointToTest | None = None
    for tag in epoch_tags:
        last = CheckpointToTest(tag, float(tag), load_inference_checkpoint(run_dir, tag, keys))
        yield last
    if "latest" in tags:
        latest = load_inference_checkpoint(run_dir, "latest", keys)
        if last is not None and same_networks(latest.nets, last.checkpoint.nets):
            print(f"latest holds the networks of epoch {last.tag}: not evaluated again")
            return
        yield CheckpointToTest("latest", epochs_done("latest", latest, last), latest)


def epochs_done(tag: str, checkpoint: InferenceCheckpoint, last_epoch: CheckpointToTest | None) -> float | None:
    """Epochs completed at ``checkpoint``: the tag of an epoch checkpoint; for ``latest`` its
    iterations in units of the run's iterations per epoch (taken from the last epoch checkpoint),
    so a run stopped mid-epoch plots between two epochs. None when the file records no position."""
    if tag.isdigit():
        return float(tag)
    if checkpoint.total_iters is None or checkpoint.epoch is None:
        return None
    start = int(checkpoint.options.get("epoch_count", 1)) - 1  # epochs before this run's first
    if last_epoch and last_epoch.checkpoint.total_iters and last_epoch.epoch and last_epoch.epoch > start:
        iters_per_epoch = last_epoch.checkpoint.total_iters / (last_epoch.epoch - start)
        return round(start + checkpoint.total_iters / iters_per_epoch, 3)
    return float(checkpoint.epoch - 1)  # the epoch in progress is not counted


# ---- folders ----------------------------------------------------------------------------------


def direction_name(opt: Options, side: str) -> str:
    """``AtoB`` / ``BtoA`` in terms of the dataset's folders, whatever --direction is."""
    source = folder_letter(opt.direction, side)
    return f"{source}to{OTHER[source]}"


def real_folders(opt: Options, side: str) -> list[Path]:
    """Real images of the domain that side ``side`` is translated into, for FID/KID (the dataset
    knows where they are): the held-out folder (``--fid_real test``), or the held-out and the
    train folder (``train+test``)."""
    splits = [opt.phase] if opt.fid_real == "test" else list(dict.fromkeys([opt.phase, "train"]))
    return DATASETS.spec(opt.dataset_mode).real_folders(opt, side, splits)


def gt_folder_of(folder: Path) -> Path:
    """``testA`` -> ``testA_gt``: the ground truth of each image, same file names."""
    return folder.with_name(folder.name + "_gt")


# ---- scoring ----------------------------------------------------------------------------------


RANDOM_BACKBONE_SEED = 0  # --random_backbone: the same random VGG-19 in every process


class MetricScorer:
    """The ``--metrics`` of one process: unpaired ones through ``metrics.evaluate_dirs`` with one
    Inception network, loaded at its first use and kept; paired ones on the ground-truth pairs;
    style ones while translating, on one VGG-19 built at its first use and kept (its weights:
    ``vgg_weights``, else torchvision's cache; ``random_backbone`` for tests)."""

    def __init__(
        self,
        names: Sequence[str],
        device: torch.device,
        inception_weights: str | None = None,
        cache_dir: str | Path | None = None,
        vgg_weights: str | None = None,
        random_backbone: bool = False,
        vgg_weights_source: str = "--vgg_weights",
    ) -> None:
        self.metrics = get_metrics(names)
        self.unpaired = [m.name for m in self.metrics if isinstance(m, UnpairedMetric)]
        self.paired = [m.name for m in self.metrics if isinstance(m, PairedMetric)]
        self.style = [m.name for m in self.metrics if isinstance(m, StyleMetric)]
        self.device = device
        self.inception_weights = inception_weights
        self.cache_dir = cache_dir
        self.vgg_weights = vgg_weights
        self.random_backbone = random_backbone
        self.vgg_weights_source = vgg_weights_source
        self._inception: FIDInceptionV3 | None = None
        self._style_scorer: StyleScorer | None = None
        self._vgg_record: dict[str, object] | None = None

    @classmethod
    def from_options(cls, opt: Options, device: torch.device) -> MetricScorer | None:
        names = metric_names(opt.metrics)
        if not names:
            return None
        # test.py takes --vgg_weights from the training run unless given (options.schema)
        source = "--vgg_weights" if "vgg_weights" in opt.explicit else "the training run's --vgg_weights"
        return cls(
            names,
            device,
            opt.inception_weights,
            opt.metrics_cache_dir or None,
            vgg_weights=opt.get("vgg_weights"),
            random_backbone=bool(opt.get("random_backbone")),
            vgg_weights_source=source,
        )

    def inception(self) -> FIDInceptionV3:
        """The FID Inception network, loaded at the first call and kept for the process."""
        if self._inception is None:
            self._inception = load_inception(self.inception_weights, self.device)
        return self._inception

    def style_scorer(self) -> StyleScorer:
        """The style metrics on their feature network, built at the first call and kept for the
        process (with the Gram matrices of the style images it has seen)."""
        if self._style_scorer is None:
            chosen = [m for m in self.metrics if isinstance(m, StyleMetric)]
            backbones = sorted({m.backbone for m in chosen})
            if len(backbones) != 1:
                raise UserError(f"--metrics {','.join(self.style)} need one feature network, not {backbones}")
            net = self.build_backbone(backbones[0])
            self._style_scorer = StyleScorer(chosen, net, self.device)
        return self._style_scorer

    def build_backbone(self, name: str) -> FeatureExtractor:
        """``name``'s features (``models.networks.perceptual``) with the weights the options say."""
        if self.random_backbone:
            with torch.random.fork_rng(devices=[]):  # leaves the global stream alone
                torch.manual_seed(RANDOM_BACKBONE_SEED)
                net = perceptual_backbone(name, random_init=True)
            self._vgg_record = {"random_init": True, "seed": RANDOM_BACKBONE_SEED, "source": "--random_backbone"}
            return net.to(self.device)
        try:
            net = perceptual_backbone(name, self.vgg_weights)
        except UserError as e:
            origin = f" (from {self.vgg_weights_source})" if self.vgg_weights else ""
            raise UserError(f"--metrics {','.join(self.style)}: {one_line(e)}{origin}") from None
        path = Path(self.vgg_weights) if self.vgg_weights else default_weights_path(name)
        source = self.vgg_weights_source if self.vgg_weights else "torchvision's file in the torch hub cache"
        self._vgg_record = {"file": str(path), "sha256": file_sha256(path), "source": source}
        return net.to(self.device)

    def vgg_record(self) -> dict[str, object] | None:
        """Which weights the style metrics' VGG-19 has (file, SHA-256, source; or random); None
        without style metrics."""
        if not self.style:
            return None
        self.style_scorer()
        return self._vgg_record

    def style_protocol(self) -> dict[str, object]:
        """How the style metrics are computed, and on which weights: recorded with their values."""
        chosen = [m for m in self.metrics if isinstance(m, StyleMetric)]
        return {**{m.name: m.protocol for m in chosen}, "vgg_weights": self.vgg_record()}

    def weights_record(self) -> dict[str, str] | None:
        """Which Inception weights the unpaired metrics use (file, SHA-256, source); None without
        unpaired metrics or for a stand-in network that does not say."""
        if not self.unpaired:
            return None
        return getattr(self.inception(), "weights_info", None)

    def check_folders(self, opt: Options, model: BaseModel) -> None:
        """Fail now, not after translating (or training), when a folder the metrics need is missing."""
        datasets = [create_dataset(opt, "test", side) for side in model.test_sides]
        sources = [dataset.folder for dataset in datasets]
        if self.style:  # before translating anything: the items must carry style images
            for dataset in datasets:
                require_style_items(dataset[0], dataset, self.style)
        if self.unpaired:
            for side in model.test_sides:
                real_folders(opt, side)
        carried = any(
            dataset.ground_truth and model.ground_truth_label(side) is not None
            for side, dataset in zip(model.test_sides, datasets, strict=True)
        )
        if self.paired and not carried and not any(gt_folder_of(folder).is_dir() for folder in sources):
            wanted = " or ".join(f"{gt_folder_of(folder).name}/" for folder in sources)
            raise UserError(
                f"--metrics {','.join(self.paired)} need ground truth: no {wanted} in {opt.dataroot}, and the test "
                f"items of --dataset_mode {opt.dataset_mode} carry none (paired data: --dataset_mode aligned)"
            )

    def score(
        self, images_dir: Path, label: str, real_dirs: list[Path], pairs: list[tuple[Path, Path]] | None
    ) -> dict[str, float]:
        """The metrics of the translations ``images_dir/*_<label>.*``; paired metrics only with ``pairs``."""
        values: dict[str, float] = {}
        if self.unpaired:
            values.update(
                evaluate_dirs(
                    images_dir,
                    real_dirs,
                    self.unpaired,
                    fake_suffix=f"_{label}",
                    device=self.device,
                    cache_dir=self.cache_dir,
                    inception=self.inception(),
                )
            )
        if self.paired and pairs:
            values.update(score_pairs(pairs, self.paired))
        return values

    def protocol(self, opt: Options, report: dict[str, dict]) -> dict[str, object]:
        """What the numbers depend on, recorded next to them (``report``: one checkpoint's, for the sets)."""
        info: dict[str, object] = {
            "metrics": [m.name for m in self.metrics],
            "phase": opt.phase,
            "sets": {
                r["metrics"]["direction"]: {
                    k: r["metrics"][k] for k in ("images", "real", "real_images", "styles") if k in r["metrics"]
                }
                for r in report.values()
                if "metrics" in r
            },
            "image_size": opt.crop_size,
            "load_size": opt.load_size,
            "preprocess": opt.preprocess,
            "eval_mode": bool(opt.eval),
            "seed": opt.seed,
        }
        if self.style:
            info.update(self.style_protocol())
        if self.unpaired:
            info.update(
                fid_real=opt.fid_real,
                inception="FID Inception-v3 (pytorch-fid weights), pool3 2048-d, bilinear 299x299",
                inception_fingerprint=self.inception().fingerprint(),
                inception_weights=self.weights_record(),
                kid="unbiased MMD^2, cubic kernel, mean and std over 100 subsets of min(1000, n) images",
            )
        return info


def require_style_items(item: dict, dataset: ImageFolderDataset, names: Sequence[str]) -> None:
    """A one-line ``UserError`` unless ``item`` carries what the style metrics ``names`` compare an
    output with (``data.base_dataset.STYLE_KEYS``), saying why not (the dataset knows)."""
    if not all(key in item for key in STYLE_KEYS):
        why = dataset.style_problem()
        raise UserError(f"--metrics {','.join(names)} compare each output with its style image: {why}")


# ---- translating and scoring one checkpoint ------------------------------------------------------


def translate_and_score(
    model: BaseModel,
    opt: Options,
    out_dir: Path,
    scorer: MetricScorer | None,
    title: str,
    durable: bool = True,
    results: dict[str, list[tuple[str, dict[str, Path]]]] | None = None,
) -> dict[str, dict]:
    """Translate every test folder with the model as loaded into ``out_dir`` (images, index.html)
    and return the scores by side, also written to ``out_dir/metrics.json`` when there are any::

        {"A": {"images": 3, "ground_truth": ".../testA_gt", "fake_B": {"l1": ..}, "real_A": {..},
               "metrics": {"direction": "AtoB", "images": 3, "real": [".../testB"], "real_images": 2,
                           "values": {"fid": .., "kid": .., "kid_std": ..}}},
         "B": {...}}

    ``durable``: flush the result images to disk before the report is written (test.py); an
    evaluation into a temporary folder (``--eval_freq``) skips it. ``results``: filled with each
    side's rows, ``(stem, {label: result file})`` in page order (test.py ``--use_wandb`` logs them).
    """
    page = HTMLPage(out_dir, title)
    report: dict[str, dict] = {}
    for side in model.test_sides:
        dataset = create_dataset(opt, "test", side)
        folder = dataset.folder
        gt_folder = gt_folder_of(folder)
        translated_label = model.translation_label(side)
        gt_label = translated_label.replace("fake", "gt") if "fake" in translated_label else f"{translated_label}_gt"
        carried_label = model.ground_truth_label(side) if dataset.ground_truth else None
        page.add_header(f"{folder} ({min(len(dataset), opt.num_test)} images)")
        style = scorer.style_scorer() if scorer is not None and scorer.style else None
        rows = translate_folder(model, side, dataset, opt, out_dir, style)
        compared: dict[str, list[tuple[Path, Path]]] = {}  # label -> (result file, ground-truth file)
        truth_source = str(gt_folder)
        for row in rows:
            stem, files = row.stem, row.files
            if carried_label is not None and carried_label in files:  # the item's own, saved with the outputs
                gt_file = files[carried_label]
                truth_source = f"{carried_label}: the ground truth each item of {folder} carries"
            else:
                gt_path = out_dir / "images" / f"{stem}_{gt_label}.png"
                gt_file = save_ground_truth(gt_folder, row.relative, dataset, gt_path, opt.aspect_ratio)
                if gt_file is not None:
                    files[gt_label] = gt_file
            if gt_file is not None:
                input_label = next(iter(files))  # the do-nothing baseline
                for label in (translated_label, input_label):
                    compared.setdefault(label, []).append((files[label], gt_file))
            items = [(f"{stem}_{label}", str(path.relative_to(out_dir))) for label, path in files.items()]
            if results is not None:
                results.setdefault(side, []).append((stem, dict(files)))
            page.add_images(items, width=opt.display_winsize)
        result: dict = {}
        if compared:
            scores = {label: score_pairs(pairs, ["l1", "psnr", "ssim"]) for label, pairs in compared.items()}
            result = {"images": len(compared[translated_label]), "ground_truth": truth_source, **scores}
        if scorer is not None:
            result["metrics"] = score_side(scorer, opt, side, out_dir / "images", rows, translated_label, compared)
        if result:
            report[side] = result
    if durable:  # every result image to disk in one go (each was written without its own fsync)
        flush_to_disk()
    if report:
        atomic_write_text(out_dir / "metrics.json", json.dumps(report, indent=2) + "\n")
        add_report_tables(page, report)
    page.save()
    return report


def score_side(
    scorer: MetricScorer,
    opt: Options,
    side: str,
    images_dir: Path,
    rows: list[Translated],
    label: str,
    compared: dict[str, list[tuple[Path, Path]]],
) -> dict:
    """``--metrics`` of one side's translations (see ``translate_and_score``)."""
    # evaluate_dirs scores every *_<label> file of the folder: files left by an earlier, larger
    # run in the same folder would silently join the set.
    on_disk = len(list_images(images_dir, stem_suffix=f"_{label}"))
    if on_disk != len(rows):
        raise UserError(
            f"{images_dir} holds {on_disk} *_{label} images but {len(rows)} were translated now "
            f"(left from an earlier run?): delete the folder or pick another --results_dir"
        )
    reals = real_folders(opt, side) if scorer.unpaired else []
    result = {
        "direction": direction_name(opt, side),
        "images": len(rows),
        "real": [str(folder) for folder in reals],
        "real_images": sum(len(list_images(folder)) for folder in reals),
        "values": scorer.score(images_dir, label, reals, compared.get(label)),
    }
    if scorer.unpaired:
        result["inception_weights"] = scorer.weights_record()
    if scorer.style:
        # the mean over images of each image's values, computed while translating
        for key in dict.fromkeys(key for row in rows for key in row.style_values):
            result["values"][key] = sum(row.style_values[key] for row in rows) / len(rows)
        result["styles"] = list(dict.fromkeys(path for row in rows for path in row.style_paths))
        result["style_protocol"] = scorer.style_protocol()
    return result


def add_report_tables(page: HTMLPage, report: dict[str, dict]) -> None:
    gt_rows = [
        [side, r["images"], label, f"{m['l1']:.4f}", f"{m['psnr']:.2f}", f"{m['ssim']:.4f}"]
        for side, r in report.items()
        for label, m in ground_truth_scores(r).items()
    ]
    if gt_rows:
        page.add_header("Translation vs ground truth")
        page.add_table(["side", "images", "compared", "L1", "PSNR (dB)", "SSIM"], gt_rows)
    scored = [r["metrics"] for r in report.values() if "metrics" in r]
    if scored:
        keys = list(dict.fromkeys(key for m in scored for key in m["values"]))
        page.add_header("Metrics (--metrics)")
        page.add_table(
            ["direction", "images", "real images", *keys],
            [[m["direction"], m["images"], m["real_images"], *(cell(m["values"], k) for k in keys)] for m in scored],
        )


def cell(values: dict[str, float], key: str) -> str:
    """A metric's value, or a dash where a direction has none (e.g. l1 without that side's truth)."""
    return f"{values[key]:.6g}" if key in values else "–"


def ground_truth_scores(result: dict) -> dict[str, dict[str, float]]:
    """{label: {l1, psnr, ssim}} of one side's result (the translation and the input vs truth)."""
    return {label: m for label, m in result.items() if isinstance(m, dict) and label != "metrics"}


def direction_scores(report: dict[str, dict]) -> dict[str, dict[str, float]]:
    """{direction: {metric: value}} of a ``translate_and_score`` report."""
    return {r["metrics"]["direction"]: r["metrics"]["values"] for r in report.values() if "metrics" in r}


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


@dataclass
class Translated:
    """One translated input: its result-file prefix, its path in its folder (no suffix), and the
    saved outputs by label; with style metrics, what they need of it, kept as the values they gave
    (the output, its content input and style images are scored while in memory, see
    ``translate_folder``) with the style files and blend weights they were scored against."""

    stem: str
    relative: Path
    files: dict[str, Path]
    style_values: dict[str, float] = field(default_factory=dict)
    style_paths: list[str] = field(default_factory=list)
    style_weights: list[float] = field(default_factory=list)


def as_saved(images: torch.Tensor) -> torch.Tensor:
    """Outputs in [-1, 1] -> [0, 1] after the 8-bit rounding of their saved files (``tensor_to_uint8``)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round() / 255


def unit(images: torch.Tensor) -> torch.Tensor:
    """Dataset images in [-1, 1] -> [0, 1]."""
    return (images.float() + 1) / 2


def translate_folder(
    model: BaseModel,
    side: str,
    dataset: ImageFolderDataset,
    opt: Options,
    out_dir: Path,
    style: StyleScorer | None = None,
) -> list[Translated]:
    """Translate the images of ``dataset`` and save every output as ``<stem>_<label>.png``: the
    stem is the input's path in its folder; for a dataset whose items pair one input with several
    styles (``names_styles``) it also names the style, ``<content>__<style>``, or the blended
    styles, ``<content>__<style1>+<style2>``. The model gets the items with the stacked images.
    With ``style``, each batch's outputs (as saved, 8-bit) are also scored against their content
    inputs and the style images their items carry while they are in memory, and each row keeps
    its values (holding every output, input and style image of a test set until the end would
    not fit in memory)."""
    # In train mode (the default, as the reference tests) batch norm's statistics would mix the
    # images of a batch, and dropout would draw its masks in another order: either way batching
    # would change the outputs, so such a model translates one image at a time.
    batch_dependent = not opt.eval and any(
        isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd))
        for net in model.nets.values()
        for m in net.modules()
    )
    batch_size = 1 if batch_dependent else (opt.test_batch_size or default_test_batch_size(model.device.type))
    count = int(min(len(dataset), opt.num_test))
    subset = torch.utils.data.Subset(dataset, range(count))
    loader = DataLoader(subset, batch_size=None, num_workers=opt.num_threads)
    rows: list[Translated] = []
    used: dict[str, str] = {}  # file stem -> what it was made from
    label = model.translation_label(side)
    for batch in batches(loader, batch_size):
        images = torch.stack([item["A"] for item in batch])
        outputs = model.inference(side, images, items=batch)
        scored: list[dict[str, float]] = [{} for _ in batch]
        if style is not None:
            for item in batch:
                require_style_items(item, dataset, [m.name for m in style.metrics])
            scored = style.score(
                as_saved(outputs[label]),
                unit(images),
                [[unit(s) for s in item["style"]] for item in batch],
                [[str(p) for p in item["style_paths"]] for item in batch],
                [[float(w) for w in item["style_weights"]] for item in batch],
            )
        for i, item in enumerate(batch):
            relative = Path(item["A_paths"]).relative_to(dataset.folder).with_suffix("")
            stem = "__".join(relative.parts)  # sub-folders folded in: a/b/x.png -> a__b__x
            source = item["A_paths"]
            if dataset.names_styles:  # one content image with each style: the style(s) named too, photo__starry_*
                stem += "__" + "+".join(Path(path).stem for path in item["style_paths"])
                source += " with " + " + ".join(item["style_paths"])
            if stem in used:  # e.g. x.png and x.jpg, or a/b.png and a__b.png
                raise UserError(f"{used[stem]} and {source} would both be saved as {stem}_*.png: rename one")
            used[stem] = source
            files = {}
            for label, tensor in outputs.items():
                files[label] = save_result(tensor[i], out_dir / "images" / f"{stem}_{label}.png", opt.aspect_ratio)
            if style is not None:
                paths, weights = [str(p) for p in item["style_paths"]], [float(w) for w in item["style_weights"]]
                rows.append(Translated(stem, relative, files, scored[i], paths, weights))
            else:
                rows.append(Translated(stem, relative, files))
    return rows


def save_result(image: torch.Tensor, path: Path, aspect_ratio: float) -> Path:
    """Save one output as PNG, shaped by ``--aspect_ratio`` as the reference does it: above 1 the
    height is multiplied by it, below 1 the width is divided by it (bicubic). (The reference
    also swaps width and height on non-square outputs; here the other side is kept.)"""
    array = tensor_to_uint8(image)
    if aspect_ratio != 1.0:
        h, w = array.shape[:2]
        size = (w, int(h * aspect_ratio)) if aspect_ratio > 1 else (int(w / aspect_ratio), h)
        array = np.asarray(Image.fromarray(array).resize(size, Image.BICUBIC))
    return save_image(array, path, fsync=False)  # results are flushed once, at the end of translate_and_score


def save_ground_truth(
    gt_folder: Path, relative: Path, dataset: ImageFolderDataset, path: Path, aspect_ratio: float = 1.0
) -> Path | None:
    """The ground-truth image of the input at ``relative`` (its path in its folder, without
    suffix; any image extension), preprocessed exactly like the inputs (test-time preprocessing
    is deterministic) and saved next to the results, so metrics compare like with like. None
    when there is none."""
    if not gt_folder.is_dir():
        return None
    pattern = glob.escape(relative.as_posix()) + ".*"  # names may hold glob characters: img[1].png
    candidates = sorted(p for p in gt_folder.glob(pattern) if is_image_file(p))
    if not candidates:
        return None
    image = dataset.preprocess(load_image(candidates[0], 3), sample_rng(0, 0, 0))
    return save_result(image, path, aspect_ratio)  # shaped like the translations it is compared with


# ---- during training ------------------------------------------------------------------------------


@contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Leave every global random state (torch, CUDA, Python, NumPy) as it was found, so code run
    inside (building a network, dropout, a DataLoader's seed) does not change training's randomness."""
    torch_state, py_state, np_state = rng_state(device), random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        set_rng_state(torch_state, device)
        random.setstate(py_state)
        np.random.set_state(np_state)


@contextmanager
def preserved_buffers(model: BaseModel) -> Iterator[None]:
    """Restore the networks' buffers and train/eval modes afterwards: a forward pass in train mode
    updates batch-norm running statistics, which are part of the checkpoint."""
    saved = {name: [(b, b.detach().clone()) for b in net.buffers()] for name, net in model.nets.items()}
    modes = {name: [(m, m.training) for m in net.modules()] for name, net in model.nets.items()}
    try:
        yield
    finally:
        with torch.no_grad():
            for pairs in saved.values():
                for buffer, copy in pairs:
                    buffer.copy_(copy)
        for pairs in modes.values():
            for module, training in pairs:
                module.training = training


@dataclass(frozen=True)
class EpochMetrics:
    """What one ``--eval_freq`` evaluation gives ``Visualizer.log_metrics``: the flat values
    (``{"fid_AtoB": .., "kid_AtoB": .., ...}``; empty when it failed) and what else the log record
    stores (the Inception weights used; ``failed``: the one-line reason when it failed)."""

    values: dict[str, float]
    info: dict[str, object]


class TrainingEvaluator:
    """``train.py --eval_freq N``: every N epochs, translate the test split with the generators in
    memory and score them as ``test.py --metrics`` would (its defaults: ``--phase test``, all
    images, load_size = crop_size, train mode unless --eval). Training's random state and the
    networks' buffers are left untouched, so a run trains bit for bit as it would without it.

    An evaluation that fails (a metric raising, an unreadable test image: any ``UserError``) prints
    one warning line and is logged as failed; training goes on, its checkpoints already saved."""

    def __init__(self, opt: Options, model: BaseModel, run_dir: Path, device: torch.device) -> None:
        self.opt = evaluation_options(opt)
        self.run_dir = run_dir
        scorer = MetricScorer.from_options(self.opt, device)
        if scorer is None:
            raise UserError("--eval_freq needs --metrics, e.g. --metrics fid,kid")
        scorer.check_folders(self.opt, model)
        if scorer.unpaired:  # load now: missing weights fail before training, not after an epoch
            with preserved_rng(device):  # a new network draws initial weights before loading its own
                scorer.inception()
        if scorer.style:
            with preserved_rng(device):
                scorer.style_scorer()
        self.scorer = scorer

    def __call__(self, model: BaseModel, epoch: int) -> EpochMetrics:
        weights, vgg = self.scorer.weights_record(), self.scorer.vgg_record()
        info: dict[str, object] = {"inception_weights": weights} if weights is not None else {}
        if vgg is not None:
            info["vgg_weights"] = vgg
        try:
            # --ema_decay: translate with the generators' averages (their buffers restored afterwards too)
            with preserved_rng(model.device), model.averaged_generators(), preserved_buffers(model):
                model.eval() if self.opt.eval else model.train()
                seed_everything(self.opt.seed)  # as test.py does per checkpoint: the same dropout masks
                with tempfile.TemporaryDirectory(prefix=".eval_", dir=self.run_dir) as tmp:
                    title = f"{self.opt.name}: {self.opt.phase}, epoch {epoch} (during training)"
                    report = translate_and_score(model, self.opt, Path(tmp), self.scorer, title, durable=False)
        except UserError as exc:
            # The metrics are a side product: losing the rest of a run to them would be worse
            # than a gap in the curve. The context managers have restored training's state.
            reason = one_line(exc)
            tqdm.write(f"train.py: warning: metrics of epoch {epoch} skipped: {reason}", file=sys.stderr)
            return EpochMetrics({}, {**info, "failed": reason})
        scores = direction_scores(report)
        flat = {f"{key}_{direction}": value for direction, values in scores.items() for key, value in values.items()}
        return EpochMetrics(flat, info)
