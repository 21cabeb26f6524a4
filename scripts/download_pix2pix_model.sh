#!/usr/bin/env bash
# Download a pretrained pix2pix generator to ./checkpoints/NAME_pretrained/latest_net_G.pth, e.g.
#   bash scripts/download_pix2pix_model.sh facades_label2photo [--force] [--checkpoints_dir DIR]
#   python test.py --dataroot ./datasets/facades --direction BtoA --model pix2pix --name facades_label2photo_pretrained
# Names: edges2shoes sat2map map2sat facades_label2photo day2night
# Source: http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/NAME.pth (PIX2PIX_MODELS_URL overrides).
# Resumable (run it again after an interruption), checked, atomic: see scripts/download.py.
# Exit status: 0 done or nothing to do, 1 failed, 2 usage error.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/find_python.sh"
exec "$python" "$repo/scripts/download.py" pix2pix_model "$@"
