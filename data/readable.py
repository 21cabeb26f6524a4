"""The one policy for image files that cannot be decoded, at training and at test time.

An image is *unreadable* when ``util.image.load_image`` cannot decode it: a 0-byte file, text or
an HTML page saved under an image name, a truncated or corrupt file, a header claiming more
pixels than PIL's decompression-bomb limit (``UnreadableImage``). Datasets scraped from the web
hold a few such files; finding one after days of training must not end the run, and must not go
unnoticed either.

Training (``create_train_loader`` wraps the dataset in ``ReplaceUnreadable``):

- an item whose image cannot be read is replaced by the next item of the dataset (index i+1,
  i+2, ..., wrapping round), with that item's own random crop and flip. The replacement depends
  only on the index and on which files are unreadable, never on the number of workers, timing or
  where a resumed run started, so an exact resume sees exactly the items the uninterrupted run saw;
- the batch carries the files that failed (``UNREADABLE_KEY``); in the main process
  ``UnreadableLog.watch`` warns once per file with its path and the decoder's reason, and
  ``end_epoch`` gives the epoch's count for the end-of-epoch line;
- once more distinct files than ``--max_unreadable`` (a fraction of the epoch's items, default
  0.01; 0: none) have failed, training stops with a one-line error naming them (exit status 2).
  Checkpoints already saved are kept; ``--continue_train`` resumes after the files are fixed or
  removed (removing files changes the epoch's items: the resume is then no longer exact).

Test (``translate_folder`` wraps the test set in ``SkipUnreadable``): an unreadable input is
skipped and named in a warning, the others are translated and saved, and a summary line counts the
skipped ones; if none of the inputs can be read, a one-line error.

Images that decode but do not fit the options (smaller than ``--crop_size`` with ``--preprocess
crop``) are not covered: they are a one-line error naming the file and the option, as before.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data import Dataset

from util.errors import UnreadableImage, UserError

# Where an item (and then its batch) carries the files that had to be replaced: [(path, reason)].
UNREADABLE_KEY = "unreadable"
DEFAULT_MAX_FRACTION = 0.01


def limit_for(items: int, max_fraction: float) -> int:
    """How many distinct unreadable files an epoch of ``items`` items tolerates."""
    return int(max_fraction * items)


def too_many(failures: list[tuple[str, str]], limit: int, items: int, max_fraction: float) -> UserError:
    """The one-line error that ends training: the first file and its reason, the others by path."""
    (path, reason), others = failures[0], [p for p, _ in failures[1:]]
    also = f"; also unreadable: {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}" if others else ""
    return UserError(
        f"cannot read image {path}: {reason}{also} ({len(failures)} unreadable, more than the {limit} that "
        f"--max_unreadable {max_fraction:g} of {items} items allows: fix or remove them, or raise --max_unreadable)"
    )


class ReplaceUnreadable(Dataset):
    """``dataset`` whose items, when their image cannot be read, are replaced by the next readable
    item (see the module's note). Each item gets ``UNREADABLE_KEY``: the files that failed on the
    way to it (usually none). More than ``limit`` failures for one item end the epoch with the
    error (more files than the limit are then unreadable anyway)."""

    def __init__(self, dataset: Dataset, max_fraction: float = DEFAULT_MAX_FRACTION) -> None:
        self.dataset = dataset
        self.max_fraction = max_fraction
        self.limit = limit_for(len(dataset), max_fraction)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        count = len(self)
        failures: list[tuple[str, str]] = []
        for step in range(min(count, self.limit + 1)):
            try:
                item = self.dataset[(index + step) % count]
            except UnreadableImage as e:
                failures.append((e.path or str(e), e.reason or str(e)))
                continue
            item[UNREADABLE_KEY] = failures
            return item
        raise too_many(failures, self.limit, count, self.max_fraction)


class UnreadableLog:
    """The main process's record of the unreadable files met during training (see the module's
    note): ``watch`` warns once per file and stops past the limit; ``end_epoch`` counts."""

    def __init__(self, items: int, max_fraction: float = DEFAULT_MAX_FRACTION) -> None:
        self.items, self.max_fraction = items, max_fraction
        self.limit = limit_for(items, max_fraction)
        self.files: dict[str, str] = {}  # path -> reason, every file found so far, in order
        self.in_epoch = 0

    def watch(self, batches: Iterable[dict]) -> Iterator[dict]:
        """``batches`` with ``UNREADABLE_KEY`` taken out and acted on."""
        for batch in batches:
            for path, reason in batch.pop(UNREADABLE_KEY, ()):
                self.in_epoch += 1
                if path not in self.files:
                    self.files[path] = reason
                    print(f"warning: cannot read image {path}: {reason}; replaced by the next item", file=sys.stderr)
                if len(self.files) > self.limit:
                    raise too_many(list(self.files.items()), self.limit, self.items, self.max_fraction)
            yield batch

    def end_epoch(self) -> str | None:
        """The epoch's count of replaced items (None: there were none), and a new count begins."""
        count, self.in_epoch = self.in_epoch, 0
        if not count:
            return None
        return f"{count} item(s) replaced this epoch: {len(self.files)} unreadable file(s) so far (warnings above)"


class SkipUnreadable(Dataset):
    """A test set whose unreadable inputs come back as ``{UNREADABLE_KEY: (path, reason)}`` instead
    of an item, for the caller to skip and name (see the module's note)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self.dataset[index]
        except UnreadableImage as e:
            return {UNREADABLE_KEY: (e.path or str(e), e.reason or str(e))}
