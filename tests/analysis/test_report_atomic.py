"""The report folder is replaced whole: a full disk leaves the previous report as it was, a
re-run leaves nothing of the earlier options, and a folder that is not a report is never replaced."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from annealbench.cli import main
from tests.analysis.synthetic import Synthetic, write_store


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("atomic") / "store", Synthetic(n_seeds=3))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_rerun_leaves_no_figure_of_the_earlier_options(store, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(store), "--out", str(out), "--no-wandb", "--grid", "window"]) == 0
    assert (out / "figures" / "h_grid_window.png").is_file()
    assert main(["report", str(store), "--out", str(out), "--no-wandb"]) == 0
    assert not list((out / "figures").glob("h_grid_*")) and (out / "report.html").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no staging folder left beside it


def test_a_full_disk_keeps_the_previous_report_byte_for_byte(store, tmp_path, monkeypatch, capsys):
    out = tmp_path / "report"
    assert main(["report", str(store), "--out", str(out), "--no-wandb"]) == 0
    before = tree(out)
    write_text = Path.write_text

    def full_disk(path, text, *args, **kwargs):  # writes a prefix of the page, then the disk is full
        if Path(path).name != "report.html":
            return write_text(path, text, *args, **kwargs)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text[: len(text) // 50])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(Path, "write_text", full_disk)
    monkeypatch.setenv("ANNEALBENCH_LOGS", str(tmp_path.parent / f"{tmp_path.name}-logs"))
    assert main(["report", str(store), "--out", str(out), "--no-wandb", "--grid", "window"]) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"error: {out}: the report could not be written: No space left on device")
    assert "the previous report is unchanged" in err and "traceback: " in err
    assert tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_a_folder_that_is_not_a_report_is_never_replaced(store, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["report", str(store), "--out", str(out), "--no-wandb"]) == 2
    assert "holds notes.txt but no report.html" in one_error_line(capsys)
    assert tree(out) == {"notes.txt": b"keep me"}


def test_the_results_directory_itself_is_refused_as_out(store, capsys):
    before = tree(store)
    assert main(["report", str(store), "--out", str(store.parent), "--no-wandb"]) == 2
    assert "holds the results store" in one_error_line(capsys)
    assert tree(store) == before
