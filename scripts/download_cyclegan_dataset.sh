#!/usr/bin/env bash
# Download a published CycleGAN dataset into ./datasets/NAME, e.g.
#   bash scripts/download_cyclegan_dataset.sh horse2zebra [--force] [--datasets_dir DIR]
# Names: apple2orange summer2winter_yosemite horse2zebra monet2photo cezanne2photo ukiyoe2photo
#        vangogh2photo maps cityscapes (refused: licence) facades iphone2dslr_flower ae_photos mini
#        mini_pix2pix mini_colorization
# Source: http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/NAME.zip (CYCLEGAN_DATASETS_URL overrides).
# Resumable (run it again after an interruption), checked, atomic: see scripts/download.py.
# Exit status: 0 done or nothing to do, 1 failed, 2 usage error.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/find_python.sh"
exec "$python" "$repo/scripts/download.py" cyclegan_dataset "$@"
