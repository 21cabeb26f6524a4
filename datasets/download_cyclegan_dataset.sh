#!/usr/bin/env bash
# The reference's path for this script (bash ./datasets/download_cyclegan_dataset.sh NAME); ours is scripts/download_cyclegan_dataset.sh.
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../scripts/download_cyclegan_dataset.sh" "$@"
