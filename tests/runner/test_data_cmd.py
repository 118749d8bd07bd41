"""`annealbench data NAME` against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib

from annealbench.cli import main
from annealbench.tasks import cifar_data
from annealbench.tasks import text
from tests.tasks.helpers import write_cifar_fixture
from tests.tasks.range_server import Behaviour, RangeServer, tar_gz_of, zip_of


def test_data_cifar10_fetches_into_the_given_root(tmp_path, capsys):
    tarball = tar_gz_of(write_cifar_fixture(tmp_path / "src", per_batch=5))
    cifar_data.load.cache_clear()
    with RangeServer(Behaviour({"/c.tgz": tarball})) as url:
        code = main(["data", "cifar10", "--root", str(tmp_path / "cache"), "--url",
                     url + "/c.tgz", "--md5", hashlib.md5(tarball).hexdigest()])
    assert code == 0
    out = capsys.readouterr().out
    assert "25 training and 5 test images" in out and str(tmp_path / "cache") in out


def test_data_wikitext103_goes_to_the_data_cache(tmp_path, capsys, monkeypatch):
    archive = zip_of({"wikitext-103-raw/wiki.train.raw": b"abc" * 10,
                      "wikitext-103-raw/wiki.valid.raw": b"de" * 5,
                      "wikitext-103-raw/wiki.test.raw": b"f"})
    monkeypatch.setenv("ANNEALBENCH_DATA", str(tmp_path))
    text._tokenised.cache_clear()
    with RangeServer(Behaviour({"/w.zip": archive})) as url:
        code = main(["data", "wikitext103", "--url", url + "/w.zip",
                     "--md5", hashlib.md5(archive).hexdigest()])
    assert code == 0
    assert "30 training and 10 validation bytes" in capsys.readouterr().out
    assert (tmp_path / "wikitext103" / "wikitext-103-raw" / "wiki.valid.raw").read_bytes() == \
        b"dede" + b"de" * 3


def test_data_with_a_wrong_md5_is_one_clear_line(tmp_path, capsys):
    with RangeServer(Behaviour({"/c.tgz": b"not a tarball"})) as url:
        code = main(["data", "cifar10", "--root", str(tmp_path), "--url", url + "/c.tgz",
                     "--md5", "0" * 32])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the download of") and "expected " + "0" * 32 in err


def test_data_names_the_data_sets_it_knows(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["data", "imagenet"])
    assert "cifar10" in capsys.readouterr().err
