"""The run-level summary of ``test.py --epoch all --metrics ...``: which checkpoint is best.

Written to ``results/<name>/``:

- ``metrics.jsonl``: one JSON record per checkpoint: ``tag``, ``epoch``, ``total_iters``,
  ``metrics`` ({direction: {metric: value}}) and ``protocol`` (what the numbers depend on);
- ``metrics.csv``: the same as a table, one column per metric and direction (``fid_AtoB``);
- ``metrics_<metric>.png``: the metric against epoch, one line per direction, the best marked;
- ``metrics.html``: the table with the best value of each column highlighted, best vs last, the plots.

"Best" follows each metric's ``higher_is_better``; a tie goes to the earlier checkpoint. "Last" is
the last checkpoint evaluated: published numbers are often a best epoch, so both are reported.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from metrics import Metric
from util.fileio import atomic_write, atomic_write_text
from util.html import HTMLPage


@dataclass(frozen=True)
class CheckpointScores:
    """The metrics of one checkpoint, by direction."""

    tag: str  # "3", "latest"
    epoch: float | None  # epochs completed (x of the plots); None: unknown (the reference's latest)
    total_iters: int | None
    scores: dict[str, dict[str, float]]  # {"AtoB": {"fid": .., "kid": .., "kid_std": ..}, "BtoA": ..}

    def value(self, direction: str, key: str) -> float | None:
        return self.scores.get(direction, {}).get(key)

    @property
    def label(self) -> str:
        """How people see the checkpoint named: ``epoch 3``, or ``latest (epoch 3.5, iteration 14)``."""
        if self.tag.isdigit():
            return f"epoch {self.tag}"
        details = [f"epoch {_number(self.epoch)}"] if self.epoch is not None else []
        details += [f"iteration {self.total_iters}"] if self.total_iters is not None else []
        return f"{self.tag} ({', '.join(details)})" if details else self.tag


@dataclass(frozen=True)
class BestAndLast:
    metric: Metric
    direction: str
    best: CheckpointScores
    best_value: float
    last: CheckpointScores
    last_value: float | None


def directions(records: Sequence[CheckpointScores]) -> list[str]:
    return list(dict.fromkeys(d for r in records for d in r.scores))


def best_and_last(records: Sequence[CheckpointScores], metrics: Sequence[Metric]) -> list[BestAndLast]:
    """For each metric and direction with a value: the best checkpoint and the last one."""
    rows = []
    for metric in metrics:
        sign = -1.0 if metric.higher_is_better else 1.0
        for direction in directions(records):
            scored = [(r, v) for r in records if _finite(v := r.value(direction, metric.name))]
            if not scored:
                continue
            # min() keeps the first of equal values: a tie goes to the earlier checkpoint
            best, best_value = min(scored, key=lambda item: sign * item[1])
            last = records[-1]
            rows.append(BestAndLast(metric, direction, best, best_value, last, last.value(direction, metric.name)))
    return rows


def format_best_vs_last(records: Sequence[CheckpointScores], metrics: Sequence[Metric]) -> str:
    """The console table: per metric and direction, the best checkpoint and its value, the last one's."""
    rows = best_and_last(records, metrics)
    if not rows:
        return "no metric values to compare"
    lower = [m.name for m in metrics if not m.higher_is_better]
    higher = [m.name for m in metrics if m.higher_is_better]
    better = [f"{', '.join(lower)}: lower is better"] if lower else []
    better += [f"{', '.join(higher)}: higher is better"] if higher else []
    table = [["metric", "direction", "best checkpoint", "best", "last checkpoint", "last"]]
    for row in rows:
        table.append(
            [
                row.metric.name,
                row.direction,
                row.best.label,
                _format(row.best_value),
                row.last.label,
                _format(row.last_value),
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = [f"best vs last of {len(records)} checkpoints ({'; '.join(better)})"]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in table]
    return "\n".join(lines)


def write_run_report(
    records: Sequence[CheckpointScores],
    metrics: Sequence[Metric],
    out_dir: Path,
    protocol: dict[str, object],
    title: str,
) -> dict[str, Path]:
    """Write metrics.jsonl, metrics.csv, metrics_<metric>.png and metrics.html (atomically);
    returns their paths by kind (``jsonl``, ``csv``, ``html``, ``plot_<metric>``)."""
    out_dir = Path(out_dir)
    paths = {
        "jsonl": atomic_write_text(out_dir / "metrics.jsonl", _jsonl(records, protocol)),
        "csv": atomic_write_text(out_dir / "metrics.csv", _csv(records, metrics)),
    }
    best = best_and_last(records, metrics)
    for metric in metrics:
        png = _plot(records, metric, [row for row in best if row.metric is metric])
        paths[f"plot_{metric.name}"] = atomic_write(out_dir / f"metrics_{metric.name}.png", lambda f, b=png: f.write(b))
    paths["html"] = _html(records, metrics, best, out_dir, protocol, title)
    return paths


# ---- the files ------------------------------------------------------------------------------------


def _columns(records: Sequence[CheckpointScores], metrics: Sequence[Metric]) -> list[tuple[str, str, str]]:
    """(metric name, value key, direction) for every column with a value: ``kid`` brings ``kid_std``."""
    columns = []
    for metric in metrics:
        keys = [metric.name] + [k for k in (f"{metric.name}_std",) if any(_has(r, k) for r in records)]
        for key in keys:
            for direction in directions(records):
                if any(r.value(direction, key) is not None for r in records):
                    columns.append((metric.name, key, direction))
    return columns


def _jsonl(records: Sequence[CheckpointScores], protocol: dict[str, object]) -> str:
    lines = [
        json.dumps(
            {
                "tag": r.tag,
                "epoch": _number(r.epoch),
                "total_iters": r.total_iters,
                "metrics": r.scores,
                "protocol": protocol,
            }
        )
        for r in records
    ]
    return "\n".join(lines) + "\n"


def _csv(records: Sequence[CheckpointScores], metrics: Sequence[Metric]) -> str:
    columns = _columns(records, metrics)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["tag", "epoch", "total_iters", *(f"{key}_{direction}" for _, key, direction in columns)])
    for r in records:
        values = [r.value(direction, key) for _, key, direction in columns]
        writer.writerow([r.tag, _number(r.epoch), r.total_iters, *("" if v is None else repr(v) for v in values)])
    return buffer.getvalue()


def _plot(records: Sequence[CheckpointScores], metric: Metric, best: Sequence[BestAndLast]) -> bytes:
    """PNG bytes of ``metric_figure``."""
    buffer = io.BytesIO()
    metric_figure(records, metric, best).savefig(buffer, format="png")
    return buffer.getvalue()


def metric_figure(records: Sequence[CheckpointScores], metric: Metric, best: Sequence[BestAndLast]) -> Figure:
    """``metric`` against epoch, a line per direction, a star on each direction's best: the figure
    of ``metrics_<metric>.png`` (returned rather than only rendered, so its data can be checked)."""
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    notes = []
    for index, direction in enumerate(directions(records)):
        points = [
            (r.epoch, r.value(direction, metric.name), r.value(direction, f"{metric.name}_std"))
            for r in records
            if r.epoch is not None and _finite(r.value(direction, metric.name))
        ]
        if not points:
            continue
        color = f"C{index}"
        xs, ys, errs = zip(*points, strict=True)
        if all(e is not None for e in errs):  # KID: mean +- std over subsets
            ax.errorbar(xs, ys, yerr=errs, color=color, marker="o", capsize=3, label=direction)
        else:
            ax.plot(xs, ys, color=color, marker="o", label=direction)
        for row in best:
            if row.direction == direction and row.best.epoch is not None:
                ax.plot([row.best.epoch], [row.best_value], marker="*", markersize=18, color=color, zorder=5)
                # the label goes below a maximum / above a minimum, and inwards from the right edge
                right = row.best.epoch > (min(xs) + max(xs)) / 2
                ax.annotate(
                    f"best {direction}: {row.best.label}",
                    (row.best.epoch, row.best_value),
                    textcoords="offset points",
                    xytext=(-10 if right else 10, -16 if metric.higher_is_better else 10),
                    ha="right" if right else "left",
                    color=color,
                    fontsize=9,
                )
                notes.append(f"{direction} {row.best.label} ({_format(row.best_value)})")
    better = "higher" if metric.higher_is_better else "lower"
    ax.set_title(f"{metric.name.upper()} by epoch ({better} is better)\nbest: " + "; ".join(notes), fontsize=10)
    ax.margins(x=0.12, y=0.15)  # room for the labels of points at the edges
    if all(r.epoch is None or float(r.epoch).is_integer() for r in records):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.name)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc="best", fontsize=9)
    figure.tight_layout()
    return figure


def _html(
    records: Sequence[CheckpointScores],
    metrics: Sequence[Metric],
    best: Sequence[BestAndLast],
    out_dir: Path,
    protocol: dict[str, object],
    title: str,
) -> Path:
    page = HTMLPage(out_dir, title)
    page.add_header(title, level=2)
    page.add_header("Protocol")
    page.add_table(["setting", "value"], [[key, _describe(value)] for key, value in protocol.items()])

    # one column per metric and direction; KID's std is shown with its mean, not as a column
    columns = [(name, key, direction) for name, key, direction in _columns(records, metrics) if key == name]
    header = ["checkpoint", "epoch", "iterations", *(f"{name} {direction}" for name, _, direction in columns)]
    rows, highlight = [], set()
    for i, r in enumerate(records):
        cells: list[object] = [r.tag, _number(r.epoch) if r.epoch is not None else "", r.total_iters or ""]
        for j, (name, key, direction) in enumerate(columns):
            value, std = r.value(direction, key), r.value(direction, f"{key}_std")
            cells.append("" if value is None else _format(value) + (f" ± {_format(std)}" if std is not None else ""))
            if any(b.best is r and b.metric.name == name and b.direction == direction for b in best):
                highlight.add((i, 3 + j))
        rows.append(cells)
    page.add_header("Checkpoints (best of each column highlighted)")
    page.add_table(header, rows, highlight)

    page.add_header("Best vs last")
    page.add_table(
        ["metric", "direction", "better", "best checkpoint", "best", "last checkpoint", "last"],
        [
            [
                b.metric.name,
                b.direction,
                "higher" if b.metric.higher_is_better else "lower",
                b.best.label,
                _format(b.best_value),
                b.last.label,
                _format(b.last_value),
            ]
            for b in best
        ],
    )
    page.add_header("By epoch")
    for metric in metrics:
        page.add_images([(f"{metric.name} by epoch", f"metrics_{metric.name}.png")], width=640)
    return page.save("metrics.html")


# ---- small helpers -------------------------------------------------------------------------------


def _describe_set(direction: str, images: dict) -> str:
    """One direction's image sets: "AtoB: 20 translations vs 20 real images (testB)"; for style
    metrics "AtoB: 5 translations vs their content images and 1 style image(s) (starry.jpg)"."""
    real = f"{images['real_images']} real images ({', '.join(Path(folder).name for folder in images['real'])})"
    if "styles" not in images:
        return f"{direction}: {images['images']} translations vs {real}"
    styles = images["styles"]
    shown = ", ".join(Path(path).name for path in styles[:3]) + (", ..." if len(styles) > 3 else "")
    against = f"their content images and {len(styles)} style image(s) ({shown})"
    return f"{direction}: {images['images']} translations vs {real + ' and ' if images['real'] else ''}{against}"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _has(record: CheckpointScores, key: str) -> bool:
    return any(key in values for values in record.scores.values())


def _number(value: float | None) -> float | int | None:
    """1.0 -> 1 (epoch numbers read as integers where they are)."""
    return int(value) if value is not None and float(value).is_integer() else value


def _format(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) < 1e-12:  # e.g. KID's std when every subset is the whole (small) set
        return "0"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"


def _describe(value: object) -> str:
    """A protocol value for people: image sets as "20 translations vs 20 real images (testB)"."""
    if isinstance(value, dict) and all(isinstance(v, dict) and "real_images" in v for v in value.values()):
        return "; ".join(_describe_set(direction, v) for direction, v in value.items())
    if isinstance(value, dict) and {"file", "sha256", "source"} <= set(value):  # the Inception weights
        return f"{value['file']} (SHA-256 {value['sha256'][:16]}..., {value.get('description', value['source'])})"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)
