"""Static HTML pages of image grids, built with dominate (text is escaped by dominate).

Used for ``results/<name>/<phase>_<epoch>/index.html`` (test.py) and the training page
``checkpoints/<name>/web/index.html``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from urllib.parse import quote

import dominate
from dominate import tags

from util.fileio import atomic_write_text


class HTMLPage:
    """A page with headers and rows of labelled images; image paths are relative to ``root``."""

    def __init__(self, root: str | Path, title: str, refresh: int = 0) -> None:
        self.root = Path(root)
        self.image_dir = self.root / "images"  # created by whoever saves images there
        self.doc = dominate.document(title=title)
        if refresh > 0:
            with self.doc.head:
                tags.meta(http_equiv="refresh", content=str(refresh))
        with self.doc.head:
            tags.style(
                "body{font-family:sans-serif} table{border-collapse:collapse} "
                "td{padding:4px;text-align:center;vertical-align:top;word-break:break-all} "
                "td.best{background:#c8f0c8;font-weight:bold}"
            )

    def add_header(self, text: str, level: int = 3) -> None:
        header = {1: tags.h1, 2: tags.h2, 3: tags.h3, 4: tags.h4}[level]
        with self.doc:
            header(text)

    def add_text(self, text: str) -> None:
        with self.doc:
            tags.p(text)

    def add_images(self, items: Sequence[tuple[str, str]], width: int = 256) -> None:
        """One row: ``items`` are (label, path relative to ``root``)."""
        self.doc.add(image_row(items, width))

    def add_video(self, rel_path: str, width: int = 512) -> None:
        """A video player for the file at ``rel_path`` (relative to ``root``), with a link to it (a
        browser plays H.264 MP4; for other codecs the link downloads the file)."""
        href = quote(Path(rel_path).as_posix())
        with self.doc:
            with tags.p():
                tags.video(src=href, controls=True, loop=True, muted=True, style=f"max-width:{width}px")
                tags.br()
                tags.a(Path(rel_path).name, href=href)

    def add_table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[object]],
        highlight: Collection[tuple[int, int]] = (),
    ) -> None:
        """A table; the cells at (row, column) in ``highlight`` get ``class="best"``."""
        with self.doc:
            with tags.table(border=1):
                with tags.tr():
                    for cell in header:
                        tags.th(str(cell))
                for i, row in enumerate(rows):
                    with tags.tr():
                        for j, cell in enumerate(row):
                            if (i, j) in highlight:
                                tags.td(str(cell), cls="best")
                            else:
                                tags.td(str(cell))

    def save(self, filename: str = "index.html", body_end: str = "") -> Path:
        """Write the page; ``body_end``: HTML already rendered (escaped) to append to the body."""
        html = self.doc.render()
        if body_end:
            start, end = html.rsplit("</body>", 1)
            html = f"{start}{body_end}</body>{end}"
        return atomic_write_text(self.root / filename, html)


def image_row(items: Sequence[tuple[str, str]], width: int = 256) -> tags.table:
    """A table of one row of labelled images: ``items`` are (label, path relative to the page)."""
    row = tags.table()
    with row:
        with tags.tr():
            for label, rel_path in items:
                href = quote(Path(rel_path).as_posix())
                with tags.td():
                    with tags.a(href=href):
                        tags.img(src=href, style=f"width:{width}px", alt=label)
                    tags.br()
                    tags.span(label)
    return row
