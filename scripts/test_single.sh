#!/usr/bin/env bash
# The facades_pix2pix generator alone on a folder of images (--model test).
# The reference's example command, unchanged; flags given to this script are added at the end
# (e.g. --gpu_ids -1, --max_iters 10). Run from the folder that holds datasets/ and checkpoints/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/find_python.sh"
set -x
"$python" "$repo/test.py" --dataroot ./datasets/facades/testB/ --name facades_pix2pix --model test --netG unet_256 --direction BtoA --dataset_mode single --norm batch "$@"
