"""Every task's data is in place before a sweep creates or starts anything.

Absent data a task may not fetch: `annealbench run` exits 2 in one line naming the task, the missing
path and the `annealbench data` command, and the results directory is never created. Absent
data a task may fetch (`download: true`): the driver fetches it once, from a local HTTP server
standing in for the published URL, before any run starts, so no run downloads.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from annealbench import cli
from annealbench.runner.preflight import DataError, prepare_data
from annealbench.runner.suite.suite import parse_suite
from annealbench.tasks import cifar_data
from annealbench.tasks import text
from tests.tasks.helpers import write_cifar_fixture
from tests.tasks.range_server import Behaviour, RangeServer, tar_gz_of

TARBALL = "/cifar-10-python.tar.gz"
CIFAR = """
name: data
preset: smoke
tasks:
  - quadratic
  - {{name: cifar10, overrides: {{max_steps: 4, val_every: 2, log_every: 2{extra}}}}}
optimizers:
  - {{name: adamw, hparams: {{window: cosine}}, lr: [1.0e-2]}}
seeds: {{eval: [10]}}
"""


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "data"
    monkeypatch.setenv("ANNEALBENCH_DATA", str(home))
    cifar_data.load.cache_clear()
    yield home
    cifar_data.load.cache_clear()


def suite_file(tmp_path, extra: str = ""):
    path = tmp_path / "data.yaml"
    path.write_text(CIFAR.format(extra=extra))
    return path


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_absent_data_is_refused_before_the_results_directory_exists(tmp_path, data_home, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", str(suite_file(tmp_path)), "--out", str(out), "--wandb",
                     "disabled"]) == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "Traceback" not in err
    line = error_lines(err)[0]
    assert "task cifar10" in line and "quadratic" not in line
    assert str(data_home / "cifar10" / "cifar-10-batches-py") in line
    assert "`annealbench data cifar10`" in line and "download: true" in line
    assert not out.exists()
    assert not (data_home / "cifar10").exists()  # nothing fetched, nothing made


def test_download_true_fetches_once_in_the_driver_before_the_runs(tmp_path, data_home,
                                                                  monkeypatch, capsys):
    tarball = tar_gz_of(write_cifar_fixture(tmp_path / "src", per_batch=50))
    out = tmp_path / "out"
    results_dir_then = []

    class Files(dict):  # notes, at each request, whether the sweep had made its directory yet
        def get(self, key, default=None):
            results_dir_then.append(out.exists())
            return super().get(key, default)

    server = Behaviour(Files({TARBALL: tarball}))
    with RangeServer(server) as url:
        monkeypatch.setenv("ANNEALBENCH_CIFAR10_URL", url + TARBALL)
        monkeypatch.setenv("ANNEALBENCH_CIFAR10_MD5", hashlib.md5(tarball).hexdigest())
        code = cli.main(["run", str(suite_file(tmp_path, ", download: true")), "--out", str(out),
                         "--workers", "2", "--wandb", "disabled"])
        assert code == 0, capsys.readouterr().err[-3000:]
    assert server.requests == [(TARBALL, None)]  # fetched once, whole,
    assert results_dir_then == [False]  # before the sweep made anything: not by a run
    assert (data_home / "cifar10" / "cifar-10-batches-py" / "batches.meta").is_file()
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs["status"]) == {"done"} and set(runs["task"]) == {"quadratic", "cifar10"}
    logs = "".join(p.read_text() for p in (out / "logs").glob("*.log"))
    assert "downloading" not in logs and "ready in" not in logs  # no run fetched anything


def test_a_fetch_that_fails_is_one_error_and_nothing_starts(tmp_path, data_home, monkeypatch,
                                                            capsys):
    out = tmp_path / "out"
    with RangeServer(Behaviour({})) as url:  # an empty mirror: 404, as an unreachable one fails
        monkeypatch.setenv("ANNEALBENCH_CIFAR10_URL", url + TARBALL)
        code = cli.main(["run", str(suite_file(tmp_path, ", download: true")), "--out", str(out),
                         "--wandb", "disabled"])
    assert code == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "Traceback" not in err
    line = error_lines(err)[0]
    assert "task cifar10" in line and "HTTP 404" in line and "annealbench data cifar10" in line
    assert not out.exists()


def test_each_corpus_names_its_own_command_and_path(tmp_path, data_home):
    suite = parse_suite("""
name: corpora
preset: smoke
tasks:
  - {name: shakespeare, overrides: {corpus: shakespeare-char}}
  - {name: shakespeare, overrides: {corpus: wikitext103, block_size: 32}}
  - {name: shakespeare, overrides: {corpus: wikitext103-bpe, block_size: 16}}
  - {name: cifar10, overrides: {data_dir: %s}}
  - shakespeare
  - digits
optimizers:
  - {name: adamw, hparams: {window: cosine}, lr: [1.0e-2]}
seeds: {eval: [1]}
""" % (tmp_path / "elsewhere"), source="corpora.yaml")
    with pytest.raises(DataError) as caught:
        prepare_data(suite)
    message = str(caught.value)
    assert message.startswith("corpora.yaml: tasks: ")
    for command, path in [
            ("annealbench data shakespeare-char", text.shakespeare_char_file()),
            ("annealbench data wikitext103", text.wikitext_folder() / "wiki.train.raw"),
            ("annealbench data wikitext103-bpe", text.wikitext_bpe_folder()),
            (f"annealbench data cifar10 --root {tmp_path / 'elsewhere'}",
             tmp_path / "elsewhere" / "cifar-10-batches-py")]:
        assert f"`{command}`" in message and str(path) in message
    assert "task shakespeare:" not in message and "digits" not in message  # embedded data


def test_present_data_needs_nothing(tmp_path, data_home):
    write_cifar_fixture(data_home / "cifar10", per_batch=5)
    prepare_data(parse_suite(CIFAR.format(extra=""), source="data.yaml"))  # no error, no fetch
