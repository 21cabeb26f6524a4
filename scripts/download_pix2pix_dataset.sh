#!/usr/bin/env bash
# Download a published pix2pix dataset (aligned A|B images) into ./datasets/NAME, e.g.
#   bash scripts/download_pix2pix_dataset.sh facades [--force] [--datasets_dir DIR]
# Names: night2day edges2handbags edges2shoes facades maps cityscapes (refused: licence)
# Source: http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/NAME.tar.gz (PIX2PIX_DATASETS_URL overrides).
# Resumable (run it again after an interruption), checked, atomic: see scripts/download.py.
# Exit status: 0 done or nothing to do, 1 failed, 2 usage error.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/find_python.sh"
exec "$python" "$repo/scripts/download.py" pix2pix_dataset "$@"
