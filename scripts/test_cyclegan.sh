#!/usr/bin/env bash
# Translate maps' testA and testB with the maps_cyclegan run.
# The reference's example command, unchanged; flags given to this script are added at the end
# (e.g. --gpu_ids -1, --max_iters 10). Run from the folder that holds datasets/ and checkpoints/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/find_python.sh"
set -x
"$python" "$repo/test.py" --dataroot ./datasets/maps --name maps_cyclegan --model cycle_gan --phase test --no_dropout "$@"
