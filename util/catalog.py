"""What the reference publishes for download: dataset and pretrained-model names, where each is
served and where it goes. Plain data, importable without torch (the download scripts run on a
bare ``python3`` before anything is installed)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The reference's published CycleGAN datasets, accepted by scripts/download_cyclegan_dataset.sh.
CYCLEGAN_DATASETS = (
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "cityscapes",
    "facades",
    "iphone2dslr_flower",
    "ae_photos",
    "mini",
    "mini_pix2pix",
    "mini_colorization",
)

# Aligned (A|B side by side) pix2pix datasets: train/ val/ (test/) folders of paired images.
PIX2PIX_DATASETS = ("cityscapes", "night2day", "edges2handbags", "edges2shoes", "facades", "maps")

# Pretrained CycleGAN generators (one direction each; run with --model test --no_dropout).
CYCLEGAN_MODELS = (
    "apple2orange",
    "orange2apple",
    "summer2winter_yosemite",
    "winter2summer_yosemite",
    "horse2zebra",
    "zebra2horse",
    "monet2photo",
    "style_monet",
    "style_cezanne",
    "style_ukiyoe",
    "style_vangogh",
    "sat2map",
    "map2sat",
    "cityscapes_photo2label",
    "cityscapes_label2photo",
    "facades_photo2label",
    "facades_label2photo",
    "iphone2dslr_flower",
)

# Pretrained pix2pix generators (unet_256, batch norm; run with --model pix2pix).
PIX2PIX_MODELS = ("edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night")

_CITYSCAPES_CYCLEGAN = (
    "the Cityscapes licence forbids redistribution: register at https://www.cityscapes-dataset.com, "
    "download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip, and arrange the photos and "
    "label images as trainA/ trainB/ testA/ testB/ in datasets/cityscapes"
)
_CITYSCAPES_PIX2PIX = (
    "the Cityscapes licence forbids redistribution: register at https://www.cityscapes-dataset.com, "
    "download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip, and put each photo and its "
    "label image side by side (one A|B image per pair) in datasets/cityscapes/train/ and val/ "
    "(scripts/combine_A_and_B.py --fold_A PHOTOS --fold_B LABELS --fold_AB datasets/cityscapes)"
)


@dataclass(frozen=True)
class Source:
    """One family of published files: ``<base_url>/<name><suffix>``, base URL overridable by the
    environment variable ``url_env`` (a mirror, or a local server in tests)."""

    key: str  # the script's own name for it, e.g. "cyclegan_model"
    label: str  # for messages: "CycleGAN model"
    script: str  # the command users type, for messages
    names: tuple[str, ...]
    base_url: str
    url_env: str
    suffix: str  # ".zip", ".tar.gz" (archives unpacked into datasets/NAME) or ".pth" (a state dict)
    refused: dict[str, str] = field(default_factory=dict)  # name -> why it cannot be downloaded

    @property
    def is_model(self) -> bool:
        return self.suffix == ".pth"


SOURCES = {
    source.key: source
    for source in (
        Source(
            "cyclegan_dataset",
            "CycleGAN dataset",
            "download_cyclegan_dataset.sh",
            CYCLEGAN_DATASETS,
            "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets",
            "CYCLEGAN_DATASETS_URL",
            ".zip",
            {"cityscapes": _CITYSCAPES_CYCLEGAN},
        ),
        Source(
            "pix2pix_dataset",
            "pix2pix dataset",
            "download_pix2pix_dataset.sh",
            PIX2PIX_DATASETS,
            "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets",
            "PIX2PIX_DATASETS_URL",
            ".tar.gz",
            {"cityscapes": _CITYSCAPES_PIX2PIX},
        ),
        Source(
            "cyclegan_model",
            "pretrained CycleGAN model",
            "download_cyclegan_model.sh",
            CYCLEGAN_MODELS,
            "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models",
            "CYCLEGAN_MODELS_URL",
            ".pth",
        ),
        Source(
            "pix2pix_model",
            "pretrained pix2pix model",
            "download_pix2pix_model.sh",
            PIX2PIX_MODELS,
            "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch",
            "PIX2PIX_MODELS_URL",
            ".pth",
        ),
    )
}
