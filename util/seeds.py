"""One seed per random stream, derived from the run's ``--seed`` and the stream's purpose.

Every seeded stream of a run (epoch shuffles, per-sample augmentation, image pools, the data
loader's generator) takes ``stream_seed(seed, purpose, ...)``: a hash, so no two streams can
coincide whatever the seed (with ``seed + 1``-style offsets, seed 0's first epoch shuffled with
the stream of an image pool). The global torch/NumPy/Python generators (weight initialisation,
dropout) are seeded with ``seed`` itself, as the reference does.
"""

from __future__ import annotations

import hashlib


def stream_seed(seed: int, purpose: str, *index: int | str) -> int:
    """A 63-bit seed for the stream ``purpose`` (plus ``index``, e.g. an epoch) of run ``seed``."""
    key = ":".join(str(part) for part in (seed, purpose, *index))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1
