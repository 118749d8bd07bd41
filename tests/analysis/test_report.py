"""The report command end to end: files, HTML content, W&B tables, and rendering in Chromium."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from annealbench.cli import main
from annealbench.analysis.figures import FIGURE_NAMES
from annealbench.analysis.report import write_analysis
from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import analyse
from annealbench.analysis.verdict import VERDICT_COLUMNS
from tests.analysis.conftest import MIXED
from tests.analysis.synthetic import Synthetic, write_store
from tests.analysis.test_figures import add_train_loss

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = write_store(tmp_path_factory.mktemp("rep") / "store", MIXED)
    (root / "runs" / "digits-adamw-0" / "wandb").mkdir(parents=True)  # the runs were logged to W&B
    assert main(["report", str(root)]) == 0
    return root, root / "report"


def test_every_figure_is_written_as_png_and_pdf(report):
    _, out = report
    for name in FIGURE_NAMES:
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000


def test_tables_are_written_as_csv_markdown_and_latex(report):
    _, out = report
    for name in ("per_config", "paired_survivors", "failures", "aggregate", "power", "ranks", "diagnostics"):
        csv = pd.read_csv(out / "tables" / f"{name}.csv")
        assert len(csv) > 0
        md = (out / "tables" / f"{name}.md").read_text().splitlines()
        assert md[0].startswith("| ") and len(md) == len(csv) + 2
        assert "\\begin{tabular}" in (out / "tables" / f"{name}.tex").read_text()
    failures = pd.read_csv(out / "tables" / "failures.csv")
    assert failures["diverged"].sum() == 1 and failures["failed"].sum() == 1  # counted, not dropped
    survivors = pd.read_csv(out / "tables" / "paired_survivors.csv")
    assert "n_diverged" in survivors.columns and not (out / "tables" / "paired.csv").exists()
    assert survivors.columns[0] == "analysis" and set(survivors["analysis"]) == {"survivors only, 95% t-interval, % of mean"}


class Links(HTMLParser):
    """Every src and href attribute of a page (script bodies are not parsed as markup)."""

    def __init__(self):
        super().__init__()
        self.src, self.href = [], []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href"):
                getattr(self, key).append(value)


def test_html_is_self_contained_with_claims_and_provenance(report):
    _, out = report
    page = (out / "report.html").read_text()
    links = Links()
    links.feed(page)
    assert len(links.src) == len(FIGURE_NAMES) and all(s.startswith("data:image/png;base64,") for s in links.src)
    assert sorted(links.href) == sorted(f"figures/{n}.pdf" for n in FIGURE_NAMES)  # beside the page
    assert "paired t-test p = " in page and "n = 6 paired seeds" in page
    assert "sign-flip max-T" in page and "Friedman" in page
    assert "diverged in 1 of 6 runs" in page
    assert "a" * 40 in page and "torch" in page and "x86_64" in page  # commit, library, hardware
    assert "scipy" in page and "lowest median final val/loss" in page


def test_wandb_tables_are_logged_offline_when_runs_used_wandb(report):
    _, out = report
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb"))


def test_no_wandb_folder_means_no_wandb_run(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2))
    assert main(["report", str(root), "--out", str(tmp_path / "out")]) == 0
    assert not (tmp_path / "out" / "wandb").exists()
    assert (tmp_path / "out" / "report.html").is_file()


def test_tune_stage_gives_the_lr_sensitivity_view(tmp_path):
    spec = Synthetic(n_seeds=2, tasks=("digits",), tune_lrs=(1e-2, 1e-4))
    root = write_store(tmp_path / "s", spec)
    runs = pd.read_parquet(root / "runs.parquet")
    runs.loc[runs["run_id"] == "digits/muphi[window=linear,lr=0.01]/seed=1", "status"] = "diverged"
    runs.to_parquet(root / "runs.parquet")
    assert main(["report", str(root), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "tables" / "lr_sensitivity.csv")
    assert len(table) == 3 * 2 and set(table["lr"]) == {1e-2, 1e-4}
    row = table[(table["config"] == "muphi[window=linear]") & (table["lr"] == 1e-2)].iloc[0]
    assert (row["done"], row["diverged"]) == (1, 1)
    assert (tmp_path / "out" / "figures" / "g_lr_sensitivity.pdf").is_file()
    page = (tmp_path / "out" / "report.html").read_text()
    assert "id='fig-g_lr_sensitivity'" in page


def test_refuse_mixed_commits_stops_the_report(tmp_path, capsys):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2, commits=("a" * 40, "b" * 40)))
    assert main(["report", str(root), "--refuse-mixed-commits", "--out", str(tmp_path / "out")]) == 2
    assert "mixes 2 git commits" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.html").exists()


def test_the_page_names_the_commits_it_mixes_before_the_verdict(tmp_path):
    """Runs kept with `annealbench run --accept-stale`: the page says which code made how many."""
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2, commits=("a" * 40, "b" * 40)))
    with pytest.warns(UserWarning, match="mixes 2 git commits"):
        assert main(["report", str(root), "--no-wandb"]) == 0
    page = (root / "report" / "report.html").read_text()
    notice = re.search(r"<p class='mixed-code' id='code-versions'>(.*?)</p>", page)
    assert notice and "mix 2 code versions" in notice.group(1)
    assert "<code>aaaaaaaaaaaa</code> (6 runs)" in notice.group(1)
    assert "<code>bbbbbbbbbbbb</code> (6 runs)" in notice.group(1)
    assert page.index("id='code-versions'") < page.index("id='question'")


def test_one_commit_is_named_quietly(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2))
    assert main(["report", str(root), "--no-wandb"]) == 0
    page = (root / "report" / "report.html").read_text()
    assert "<p class='muted' id='code-versions'>Runs made by <code>aaaaaaaaaaaa</code> (12 runs).</p>" in page
    assert "mixed-code'" not in page


def test_a_corrupt_store_stops_the_report_naming_the_file(tmp_path, capsys):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2))
    (root / "runs.parquet").write_bytes(b"PAR1 not really")
    assert main(["report", str(root)]) == 2
    assert "runs.parquet: cannot be read as Parquet" in capsys.readouterr().err


@pytest.fixture(scope="module")
def verdict_report(tmp_path_factory):
    root = add_train_loss(write_store(tmp_path_factory.mktemp("verdict") / "store", MIXED))
    a = analyse(load_store(root))
    return a, write_analysis(a, root / "report", grid="window", wandb=False)


def test_verdict_table_is_written_first_and_shown_before_any_figure(verdict_report):
    a, paths = verdict_report
    assert paths.tables[0].name == "verdict.csv"
    assert pd.read_csv(paths.tables[0]).columns.tolist()[:len(VERDICT_COLUMNS)] == list(VERDICT_COLUMNS)
    page = paths.html.read_text()
    first_figure = min(page.index("<figure"), page.index("plotly-graph-div"))
    assert page.index("<table id='verdict'") < first_figure
    assert "No verdict computed" not in page


def test_the_verdict_matrix_comes_first_with_one_cell_per_verdict_row(verdict_report):
    a, paths = verdict_report
    page = paths.html.read_text()
    start = page.index("<div id='verdict-matrix'>")
    matrix = page[start:page.index("</div>", start)]
    assert start < page.index("<table id='verdict'")
    cells = re.findall(r"<td class='verdict-(\w+)'><b>(\w+)</b><br>([^<]*)</td>", matrix)
    assert len(cells) == len(a.verdict) and all(c == v for c, v, _ in cells)
    assert sorted(v for _, v, _ in cells) == sorted(a.verdict["verdict"])
    assert matrix.count("<h3>Against ") == a.verdict["reference"].nunique()
    assert any(text.endswith("]") and "%" in text for _, _, text in cells)  # task cells: % of the reference


def test_verdict_rows_are_coloured_by_verdict_with_the_margin_shown(verdict_report):
    a, paths = verdict_report
    page = paths.html.read_text()
    table = page[page.index("<table id='verdict'"):page.index("</table>", page.index("<table id='verdict'"))]
    classes = re.findall(r"<tr class='verdict-(\w+)'>", table)
    assert classes == a.verdict["verdict"].tolist() and len(set(classes)) >= 2
    assert "<th>margin</th>" in table and "<th>margin_rule</th>" in table
    assert f"<td>{html.escape(a.verdict['margin_rule'].iloc[0])}</td>" in table
    assert re.search(r"tr\.verdict-worse td\{background:#[0-9a-f]{6}\}", page)


def test_without_a_verdict_the_page_says_none_was_computed(verdict_report, tmp_path):
    a, _ = verdict_report
    paths = write_analysis(dataclasses.replace(a, verdict=a.verdict.iloc[:0]), tmp_path / "report", wandb=False)
    page = paths.html.read_text()
    assert "No verdict computed" in page and page.index("No verdict computed") < page.index("<figure")
    assert not (tmp_path / "report" / "tables" / "verdict.csv").exists()


def test_sections_come_in_reading_order_with_details_collapsed(verdict_report):
    _, paths = verdict_report
    page = paths.html.read_text()
    order = [page.index(f"<section id='{s}'>") for s in ("question", "tasks", "across", "theory")]
    assert order == sorted(order) and order[-1] < page.index("<details id='details'>")
    details = page[page.index("<details id='details'>"):]
    assert "paired t-test p = " in details and "Methods" in details and "Provenance" in details
    assert "paired t-test p = " not in page[:page.index("<details id='details'>")]  # claims only in details
    assert page.index("id='fig-h_grid_window'") < page.index("<section id='across'>")


def test_interactive_curves_embed_plotly_once_per_page(verdict_report):
    a, paths = verdict_report
    page = paths.html.read_text()
    assert page.count("* plotly.js v") == 1  # the library, inline: the page works offline
    assert page.count("Plotly.newPlot") == 2 * len(a.curves)  # evaluation and training loss per task
    assert '"yaxis.type":"log"' in page.replace(" ", "")  # the linear/log switch


def test_latex_tables_use_booktabs(verdict_report):
    _, paths = verdict_report
    tex = next(p for p in paths.tables if p.name == "verdict.tex").read_text()
    assert "\\usepackage{booktabs}" in tex
    assert all(rule in tex for rule in ("\\toprule", "\\midrule", "\\bottomrule"))


def test_unknown_grid_factor_stops_the_report_naming_the_choices(tmp_path):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2))
    with pytest.raises(ValueError, match="grid factor 'gama' .* factors that vary: \\['window'\\]"):
        write_analysis(analyse(load_store(root)), tmp_path / "out", grid="gama", wandb=False)


CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
                "--v=0", "--virtual-time-budget=15000")
PROBE_HEAD = """<head><script>window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
const __error = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); __error(...a); };
</script>"""
PROBE_BODY = """<script>window.addEventListener('load', () => setTimeout(() => {
  const verdict = document.getElementById('verdict') || document.getElementById('no-verdict');
  const figures = [...document.querySelectorAll('figure, .plotly-graph-div')];
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const out = {verdict_first: !!verdict && figures.length > 0 &&
                 figures.every(f => verdict.compareDocumentPosition(f) & Node.DOCUMENT_POSITION_FOLLOWING),
               overflowing: plots.filter(p => p.querySelector('.main-svg').getBoundingClientRect().right >
                                             p.parentElement.getBoundingClientRect().right + 1).length,
               plots: plots.length, drawn: plots.filter(p => p.querySelector('.main-svg .scatterlayer .trace')).length,
               images: [...document.images].filter(i => i.naturalWidth > 0).length, errors: window.__errors};
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre); }, 500));</script></body>"""


def chromium(page, profile, *extra):
    return subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=180, check=True)


def probe(page, tmp_path):
    """Open `page` with the probe scripts in headless Chromium: (probe results, console errors)."""
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("<head>", PROBE_HEAD, 1).replace("</body>", PROBE_BODY))
    with tempfile.TemporaryDirectory() as profile:
        run = chromium(probed, profile, "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stdout[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line and "rror" in line]
    return json.loads(found.group(1).replace("&quot;", '"')), console


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (install the Debian "
                                                              "package 'chromium')")


@needs_chromium
def test_report_renders_in_headless_chromium_verdict_first_without_errors(verdict_report, tmp_path):
    a, paths = verdict_report
    result, console = probe(paths.html, tmp_path)
    assert result["verdict_first"], result
    assert result["plots"] == result["drawn"] == 2 * len(a.curves), result
    assert result["images"] == len(paths.figures) and result["overflowing"] == 0, result
    assert result["errors"] == [] and console == [], (result["errors"], console)
    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        chromium(paths.html, profile, "--window-size=1280,2400", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


@needs_chromium
def test_the_browser_probe_sees_a_script_error(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><head></head><body><table id='verdict'></table><figure></figure>"
                      "<script>undefinedFunction();</script></body></html>")
    result, console = probe(broken, tmp_path)
    assert result["verdict_first"] and result["plots"] == 0
    assert any("undefinedFunction" in e for e in result["errors"])
    assert any("undefinedFunction" in line for line in console)
