#!/usr/bin/env bash
# Download a pretrained CycleGAN generator to ./checkpoints/NAME_pretrained/latest_net_G.pth, e.g.
#   bash scripts/download_cyclegan_model.sh horse2zebra [--force] [--checkpoints_dir DIR]
#   python test.py --dataroot datasets/horse2zebra/testA --name horse2zebra_pretrained --model test --no_dropout
# Names: apple2orange orange2apple summer2winter_yosemite winter2summer_yosemite horse2zebra zebra2horse
#        monet2photo style_monet style_cezanne style_ukiyoe style_vangogh sat2map map2sat
#        cityscapes_photo2label cityscapes_label2photo facades_photo2label facades_label2photo iphone2dslr_flower
# Source: http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth (CYCLEGAN_MODELS_URL overrides).
# Resumable (run it again after an interruption), checked, atomic: see scripts/download.py.
# Exit status: 0 done or nothing to do, 1 failed, 2 usage error.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/find_python.sh"
exec "$python" "$repo/scripts/download.py" cyclegan_model "$@"
