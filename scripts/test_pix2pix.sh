#!/usr/bin/env bash
# Translate facades' test pairs with the facades_pix2pix run (L1/PSNR/SSIM against the true photos).
# The reference's example command, unchanged; flags given to this script are added at the end
# (e.g. --gpu_ids -1, --max_iters 10). Run from the folder that holds datasets/ and checkpoints/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/find_python.sh"
set -x
"$python" "$repo/test.py" --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --netG unet_256 --direction BtoA --dataset_mode aligned --norm batch "$@"
