"""Image-quality metrics. One file per metric (see the evaluation issue for FID/KID)."""
