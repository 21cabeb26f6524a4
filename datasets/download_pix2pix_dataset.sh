#!/usr/bin/env bash
# The reference's path for this script (bash ./datasets/download_pix2pix_dataset.sh NAME); ours is scripts/download_pix2pix_dataset.sh.
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../scripts/download_pix2pix_dataset.sh" "$@"
