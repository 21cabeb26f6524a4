"""The reference's path for this script (``python datasets/combine_A_and_B.py --fold_A ...``); the
implementation is ``scripts/combine_A_and_B.py``."""

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "combine_A_and_B.py"), run_name="__main__")
