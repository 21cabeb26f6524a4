#!/usr/bin/env bash
# Colorization (L -> ab) on colour photos in ./datasets/colorization/train/.
# The reference's example command, unchanged; flags given to this script are added at the end
# (e.g. --gpu_ids -1, --max_iters 10). Run from the folder that holds datasets/ and checkpoints/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/find_python.sh"
set -x
"$python" "$repo/train.py" --dataroot ./datasets/colorization --name color_pix2pix --model colorization "$@"
