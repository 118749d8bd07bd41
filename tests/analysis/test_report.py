"""The report command end to end: files, HTML content, W&B tables, and rendering in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile

import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.figures import FIGURE_NAMES
from tests.analysis.conftest import MIXED
from tests.analysis.synthetic import Synthetic, write_store

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
    for name in ("per_config", "paired", "failures", "aggregate", "power", "ranks", "diagnostics"):
        csv = pd.read_csv(out / "tables" / f"{name}.csv")
        assert len(csv) > 0
        md = (out / "tables" / f"{name}.md").read_text().splitlines()
        assert md[0].startswith("| ") and len(md) == len(csv) + 2
        assert "\\begin{tabular}" in (out / "tables" / f"{name}.tex").read_text()
    failures = pd.read_csv(out / "tables" / "failures.csv")
    assert failures["diverged"].sum() == 1 and failures["failed"].sum() == 1  # counted, not dropped
    assert "n_diverged" in pd.read_csv(out / "tables" / "paired.csv").columns


def test_html_is_self_contained_with_claims_and_provenance(report):
    _, out = report
    page = (out / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(FIGURE_NAMES)
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from outside the file
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
    assert 'id="fig-g_lr_sensitivity"' in page


def test_refuse_mixed_commits_stops_the_report(tmp_path, capsys):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2, commits=("a" * 40, "b" * 40)))
    assert main(["report", str(root), "--refuse-mixed-commits", "--out", str(tmp_path / "out")]) == 2
    assert "mixes 2 git commits" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.html").exists()


def test_a_corrupt_store_stops_the_report_naming_the_file(tmp_path, capsys):
    root = write_store(tmp_path / "s", Synthetic(n_seeds=2))
    (root / "runs.parquet").write_bytes(b"PAR1 not really")
    assert main(["report", str(root)]) == 2
    assert "runs.parquet: cannot be read as Parquet" in capsys.readouterr().err


MEASURE = """<script>window.addEventListener('load', () => {
  const sizes = [...document.images].map(i => [i.id, i.naturalWidth, i.naturalHeight,
                 i.getBoundingClientRect().width, i.getBoundingClientRect().height]);
  const pre = document.createElement('pre'); pre.id = 'measured'; pre.textContent = JSON.stringify(sizes);
  document.body.appendChild(pre); });</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (install the Debian package 'chromium')")
def test_every_figure_renders_in_headless_chromium(report, tmp_path):
    _, out = report
    page = tmp_path / "measured.html"
    page.write_text((out / "report.html").read_text().replace("</body>", MEASURE))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    sizes = json.loads(found.group(1).replace("&quot;", '"'))
    assert sorted(s[0] for s in sizes) == sorted(f"fig-{n}" for n in FIGURE_NAMES)
    for name, nat_w, nat_h, w, h in sizes:
        assert min(nat_w, nat_h, w, h) > 0, name
