#!/usr/bin/env bash
# pix2pix on facades, labels to photos (bash ./datasets/download_pix2pix_dataset.sh facades first).
# The reference's example command, unchanged; flags given to this script are added at the end
# (e.g. --gpu_ids -1, --max_iters 10). Run from the folder that holds datasets/ and checkpoints/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/find_python.sh"
set -x
"$python" "$repo/train.py" --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --netG unet_256 --direction BtoA --lambda_L1 100 --dataset_mode aligned --norm batch --pool_size 0 "$@"
