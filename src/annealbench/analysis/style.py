"""One look for every static figure: a two-column paper's sizes and fonts, seaborn's style, a
colour-blind-safe colour and a line style per configuration, and files that carry their provenance.

Sizes follow a two-column paper (a column is about 3.4 in wide, the page 7 in); text is 7–8 pt
DejaVu Sans, whose TrueType glyphs (Greek, Ϝ, arrows) are embedded in every PDF (`pdf.fonttype`
42) rather than converted to Type 3 outlines. `clipped(fig)` lists what would be cut at the
figure's edge; `save` logs it, and the tests require it to be empty.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from annealbench.common.store_schema import CADENCE_KEYS, parse_label, task_label  # noqa: E402

log = logging.getLogger(__name__)
COLUMN_IN = 3.4  # width of one column of a two-column paper, inches
PAGE_IN = 7.0  # width of both columns
PNG_DPI = 200
# Characters of a label per line (`wrap_label`), by the width it is drawn in at 7.5-8 pt.
PANEL_CHARS = 26  # a panel of a three-a-row grid (PAGE_IN / 3), or a row label beside one
HALF_CHARS = 48  # a panel of a two-a-row grid
LINE_STYLES = ("-", "--", "-.", ":")
PAPER_RC = {
    "font.family": "DejaVu Sans", "font.size": 7.5, "axes.titlesize": 8, "axes.labelsize": 7.5,
    "xtick.labelsize": 6.5, "ytick.labelsize": 6.5, "legend.fontsize": 6.5, "figure.titlesize": 8.5,
    "lines.linewidth": 1.2, "pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": PNG_DPI,
    "figure.constrained_layout.use": True, "figure.constrained_layout.w_pad": 0.05,
    "figure.constrained_layout.h_pad": 0.05, "axes.spines.top": False, "axes.spines.right": False,
    "figure.dpi": PNG_DPI,  # laid out, and checked for clipping, at the resolution it is saved at
}


@dataclass(frozen=True)
class Look:
    """How one configuration is drawn in every figure."""

    colour: tuple
    line: str


@dataclass(frozen=True)
class Provenance:
    """What every saved figure carries in its metadata."""

    store_sha256: str
    git_commits: tuple[str, ...]


def apply() -> None:
    """seaborn's paper style with this module's sizes; called before any figure is drawn."""
    sns.set_theme(context="paper", style="ticks", palette="colorblind", rc=PAPER_RC)


def looks(configs) -> dict[str, Look]:
    """One colour (seaborn's colour-blind palette) and line style per configuration, by sorted
    label, so a configuration looks the same in every figure; after ten colours the line style
    changes, so no two configurations share both."""
    labels = sorted(set(configs))
    colours = sns.color_palette("colorblind", 10)
    pairs = itertools.product(LINE_STYLES, colours)
    return {c: Look(colour=colour, line=line) for c, (line, colour) in zip(labels, pairs)}


def _shorten(piece: str, width: int) -> str:
    """`piece` in at most `width` characters: its start and its end (a path's file name) kept."""
    if len(piece) <= width:
        return piece
    head = max(1, (width - 1) // 3)
    return piece[:head] + "…" + piece[len(piece) - (width - 1 - head):]


def _item(key: str, value: str, end: str, width: int) -> str:
    """`key=value` and its separator in at most `width` characters, shortening the value first."""
    text = f"{key}={value}{end}"
    room = width - len(key) - 1 - len(end)
    if len(text) <= width or room < 5:
        return _shorten(text, width)
    return f"{key}={_shorten(value, room)}{end}"


def wrap_label(label: str, width: int, max_lines: int = 3) -> str:
    """A task label or configuration as at most `max_lines` lines of at most `width` characters,
    broken between its `key=value` items (values unescaped, so `%2F` reads `/`); an item longer
    than a line keeps its start and end around `…`, and items past the last line are counted.
    Figures draw labels through it, so no label runs past its panel."""
    try:
        name, items = parse_label(label)
    except ValueError:
        name, items = label, ()
    pieces = [_shorten(name + ("[" if items else ""), width)] + [
        _item(k, str(v), "]" if i == len(items) - 1 else ",", width) for i, (k, v) in enumerate(items)]
    lines = [""]
    for k, piece in enumerate(pieces):
        if len(lines[-1]) + len(piece) <= width:
            lines[-1] += piece
        elif len(lines) < max_lines:
            lines.append(piece)
        else:
            more = f"… +{len(pieces) - k} more"
            lines[-1] = lines[-1][:width - len(more)] + more
            break
    return "\n".join(lines)


def task_titles(tasks) -> dict[str, str]:
    """Each task label as a figure titles it: without its measuring cadence (`log_every`,
    `val_every`) wherever the labels stay distinct without it, so a budget reads
    `digits[max_steps=1200]` and a panel title fits its panel."""
    def short(label: str) -> str:
        try:
            name, items = parse_label(label)
        except ValueError:
            return label
        return task_label(name, tuple((k, v) for k, v in items if k not in CADENCE_KEYS))

    tasks = list(tasks)
    shortened = {t: short(t) for t in tasks}
    return shortened if len(set(shortened.values())) == len(tasks) else {t: t for t in tasks}


def titled(head: str, tail: str, width: int) -> str:
    """`head` (already wrapped) followed by `tail`: on its last line when that fits in `width`,
    else on a line of its own (without its leading `: `)."""
    last = head.rsplit("\n", 1)[-1]
    if len(last) + len(tail) <= width:
        return head + tail
    return head + "\n" + tail.removeprefix(": ")


def store_provenance(root: Path, commits) -> Provenance:
    """SHA-256 over the bytes of `runs.parquet` then `results.parquet`, and the runs' git commits."""
    digest = hashlib.sha256()
    for name in ("runs.parquet", "results.parquet"):
        digest.update((Path(root) / name).read_bytes())
    return Provenance(store_sha256=digest.hexdigest(), git_commits=tuple(sorted(set(map(str, commits)))))


def drawn(fig: Figure, draw: bool = True):
    """The renderer of `fig` after laying it out and drawing it (without output) when `draw`; a
    bare Figure gets the Agg canvas that savefig would use."""
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    if draw:
        fig.draw_without_rendering()  # runs the layout engine first
    return fig.canvas.get_renderer()


def _checked_artists(fig: Figure) -> list:
    """Axes (their tight box holds the tick labels actually drawn), each axes' title, labels and
    texts, and the figure's own texts, title and legends."""
    out = list(fig.texts) + list(fig.legends) + [t for t in (fig._suptitle, fig._supxlabel, fig._supylabel) if t]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        out += [ax, ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        out += [ax.get_legend()] if ax.get_legend() else []
    return [a for a in out if a.get_visible() and (not isinstance(a, Text) or a.get_text().strip())]


def clipped(fig: Figure, tolerance: float = 1.0, *, draw: bool = True) -> list[str]:
    """Text, legend and axes artists whose tight bounding box leaves the figure (pixels ± tolerance).

    draw=False reuses the layout of the last draw (after a savefig) instead of drawing again."""
    renderer = drawn(fig, draw)
    box = fig.bbox
    out = []
    for artist in _checked_artists(fig):
        bb = artist.get_tightbbox(renderer) if isinstance(artist, Axes) else artist.get_window_extent(renderer)
        if bb is None or not np.isfinite(bb.extents).all():
            continue
        if (bb.x0 < box.x0 - tolerance or bb.y0 < box.y0 - tolerance or bb.x1 > box.x1 + tolerance
                or bb.y1 > box.y1 + tolerance):
            name = artist.get_text() if isinstance(artist, Text) else (
                f"axes {artist.get_title()!r}" if isinstance(artist, Axes) else type(artist).__name__)
            out.append(f"{type(artist).__name__} {name[:60]!r} at {tuple(round(v) for v in bb.extents)} "
                       f"outside {tuple(round(v) for v in box.extents)}")
    return out


def save(fig: Figure, out: Path, name: str, provenance: Provenance | None) -> Path:
    """Write NAME.png (200 dpi) and NAME.pdf (TrueType fonts, provenance in the metadata); the
    PNG's path. Anything `clipped` is logged as a warning."""
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=PNG_DPI)
    for problem in clipped(fig, draw=False):
        log.warning("figure %s: %s", name, problem)
    meta = {"Title": f"annealbench {name}", "Creator": "annealbench analysis"}
    if provenance is not None:
        meta["Subject"] = f"results store sha256 {provenance.store_sha256}"
        meta["Keywords"] = "git commit " + ", ".join(provenance.git_commits)
    fig.savefig(out / f"{name}.pdf", metadata=meta)
    plt.close(fig)
    return png
