"""Fetch, resume, verify and extract, against a local HTTP server on 127.0.0.1.

The archives are written here in the published layouts: `cifar-10-python.tar.gz` holding
`cifar-10-batches-py/` (five training batches, `test_batch`, `batches.meta`, plus the fixture's
MD5SUMS), and `wikitext-103-raw-v1.zip` holding `wikitext-103-raw/wiki.{train,valid,test}.raw`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time

import pytest
import torch

from annealbench.tasks import DatasetError, get_task
from annealbench.tasks import cifar_data
from annealbench.tasks import download
from annealbench.tasks import text
from tests.tasks.helpers import adamw, write_cifar_fixture
from tests.tasks.range_server import Behaviour, RangeServer, tar_gz_of, zip_of

TARBALL = "/cifar-10-python.tar.gz"


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> bytes:
    folder = write_cifar_fixture(tmp_path_factory.mktemp("cifar"), per_batch=6)
    return tar_gz_of(folder)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cifar_data.load.cache_clear()
    text._tokenised.cache_clear()
    yield
    cifar_data.load.cache_clear()
    text._tokenised.cache_clear()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _leftovers(root) -> list[str]:
    """What is left in `root`, besides the lock file that serialises concurrent fetches."""
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock"))


def test_published_defaults_are_the_real_archives():
    assert cifar_data.ARCHIVE.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert cifar_data.ARCHIVE.md5 == "c58f30108f718f92721af3b95e74349a"
    assert text.WIKITEXT103.folder == "wikitext-103-raw"
    assert text.WIKITEXT103.md5 == "0ca3512bd7a238be4a63ce7b434f8935"


def test_good_tarball_is_fetched_verified_and_extracted(tmp_path, tarball):
    behaviour = Behaviour({TARBALL: tarball})
    with RangeServer(behaviour) as url:
        folder = cifar_data.download(tmp_path, url=url + TARBALL, md5_hex=_md5(tarball))
    assert folder == tmp_path / "cifar-10-batches-py"
    assert _leftovers(tmp_path) == ["cifar-10-batches-py"]  # no tarball, .part or staging left
    data = cifar_data.load(str(tmp_path))
    assert data["train_x"].shape == (30, 3, 32, 32) and data["test_y"].shape == (6,)
    assert behaviour.requests == [(TARBALL, None)]
    with RangeServer(behaviour) as url:  # present: nothing is fetched again
        cifar_data.download(tmp_path, url=url + TARBALL, md5_hex=_md5(tarball))
    assert len(behaviour.requests) == 1


def test_truncated_download_is_an_error_and_the_next_call_resumes(tmp_path, tarball):
    half = len(tarball) // 2
    with RangeServer(Behaviour({TARBALL: tarball}, cut_after=half)) as url:
        with pytest.raises(DatasetError, match=f"truncated after {half} of {len(tarball)} bytes"):
            cifar_data.download(tmp_path, url=url + TARBALL, md5_hex=_md5(tarball))
    part = tmp_path / "cifar-10-python.tar.gz.part"
    assert part.read_bytes() == tarball[:half]
    assert not (tmp_path / "cifar-10-batches-py").exists()
    healthy = Behaviour({TARBALL: tarball})
    with RangeServer(healthy) as url:
        cifar_data.download(tmp_path, url=url + TARBALL, md5_hex=_md5(tarball))
    assert healthy.requests == [(TARBALL, f"bytes={half}-")]
    assert cifar_data.load(str(tmp_path))["train_y"].shape == (30,)


def test_wrong_md5_is_an_error_and_removes_the_file(tmp_path, tarball):
    wrong = "0" * 32
    with RangeServer(Behaviour({TARBALL: tarball})) as url:
        with pytest.raises(DatasetError) as err:
            cifar_data.download(tmp_path, url=url + TARBALL, md5_hex=wrong)
    assert _md5(tarball) in str(err.value) and wrong in str(err.value)
    assert _leftovers(tmp_path) == []


def test_a_server_that_ignores_the_range_sends_the_whole_file_again(tmp_path, tarball):
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(b"stale bytes of another file")
    behaviour = Behaviour({TARBALL: tarball}, honour_range=False)
    with RangeServer(behaviour) as url:
        cifar_data.download(tmp_path, url=url + TARBALL, md5_hex=_md5(tarball))
    assert behaviour.requests == [(TARBALL, "bytes=27-")]
    assert cifar_data.load(str(tmp_path))["train_y"].shape == (30,)


def _fetch_in_child(url: str, dest: str, md5_hex: str) -> None:
    download.fetch(url, download.Path(dest), md5_hex=md5_hex)


def test_killed_mid_way_then_resumed(tmp_path, tarball):
    """A fetching process is SIGKILLed half-way; the next call asks only for the rest."""
    dest = tmp_path / "cifar-10-python.tar.gz"
    part = tmp_path / "cifar-10-python.tar.gz.part"
    slow = Behaviour({TARBALL: tarball}, chunk=1024, delay_s=0.02)
    with RangeServer(slow) as url:
        child = multiprocessing.get_context("fork").Process(
            target=_fetch_in_child, args=(url + TARBALL, str(dest), _md5(tarball)))
        child.start()
        deadline = time.monotonic() + 30
        while not (part.is_file() and part.stat().st_size >= 4096):
            assert time.monotonic() < deadline and child.is_alive(), "the child never fetched"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    assert child.exitcode == -signal.SIGKILL
    kept = part.stat().st_size
    assert 0 < kept < len(tarball) and not dest.exists()
    fast = Behaviour({TARBALL: tarball})
    with RangeServer(fast) as url:
        cifar_data.download(tmp_path, url=url + TARBALL, md5_hex=_md5(tarball))
    assert fast.requests == [(TARBALL, f"bytes={kept}-")]
    assert cifar_data.load(str(tmp_path))["train_x"].shape == (30, 3, 32, 32)


def test_concurrent_fetches_take_turns_and_fetch_once(tmp_path, tarball):
    """Two processes ask for the same data set at once: one request, one good copy."""
    slow = Behaviour({TARBALL: tarball}, chunk=4096, delay_s=0.01)
    with RangeServer(slow) as url:
        context = multiprocessing.get_context("fork")
        children = [context.Process(target=cifar_data.download, args=(tmp_path,),
                                    kwargs={"url": url + TARBALL, "md5_hex": _md5(tarball)})
                    for _ in range(2)]
        for child in children:
            child.start()
        for child in children:
            child.join(60)
    assert [c.exitcode for c in children] == [0, 0]
    assert slow.requests == [(TARBALL, None)]
    assert _leftovers(tmp_path) == ["cifar-10-batches-py"]
    assert cifar_data.load(str(tmp_path))["train_y"].shape == (30,)


def test_an_interrupted_extraction_is_redone(tmp_path, tarball):
    staging = tmp_path / ".cifar-10-batches-py.extracting"
    (staging / "cifar-10-batches-py").mkdir(parents=True)
    (staging / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"half a file")
    with RangeServer(Behaviour({TARBALL: tarball})) as url:
        cifar_data.download(tmp_path, url=url + TARBALL, md5_hex=_md5(tarball))
    assert _leftovers(tmp_path) == ["cifar-10-batches-py"]
    assert cifar_data.load(str(tmp_path))["train_y"].shape == (30,)


def test_a_damaged_archive_is_an_interrupted_extraction_error(tmp_path, tarball):
    damaged = tarball[: len(tarball) * 2 // 3]  # its MD5 is what the caller said it would be
    with RangeServer(Behaviour({TARBALL: damaged})) as url:
        with pytest.raises(DatasetError, match="extracting .* was interrupted") as err:
            cifar_data.download(tmp_path, url=url + TARBALL, md5_hex=_md5(damaged))
    assert "nothing was left at" in str(err.value)
    assert _leftovers(tmp_path) == ["cifar-10-python.tar.gz"]  # the archive, nothing extracted


def test_the_task_option_download_uses_the_environment(tmp_path, tarball, monkeypatch):
    behaviour = Behaviour({TARBALL: tarball})
    with RangeServer(behaviour) as url:
        monkeypatch.setenv("ANNEALBENCH_DATA", str(tmp_path))
        monkeypatch.setenv("ANNEALBENCH_CIFAR10_URL", url + TARBALL)
        monkeypatch.setenv("ANNEALBENCH_CIFAR10_MD5", _md5(tarball).upper())
        module, _ = get_task("cifar10", "smoke", batch_size=6, val_images=10, download=True).build(
            adamw(1e-3), seed=0)
    assert behaviour.requests == [(TARBALL, None)]
    assert (tmp_path / "cifar10" / "cifar-10-batches-py" / "batches.meta").is_file()
    assert module.net is not None


WIKI = "/wikitext-103-raw-v1.zip"
WIKI_TEXT = {"train": " = Valkyria Chronicles III = \n\n Senjō no Valkyria 3 : 未 ...\n" * 40,
             "valid": " = Homarus gammarus = \n\n Homarus gammarus , known as ...\n" * 10,
             "test": " = Robert Boulter = \n\n Robert Boulter is an English actor\n" * 10}


@pytest.fixture()
def wiki_zip() -> bytes:
    return zip_of({f"wikitext-103-raw/wiki.{k}.raw": v.encode() for k, v in WIKI_TEXT.items()})


def test_wikitext_is_fetched_and_read_as_bytes(tmp_path, wiki_zip, monkeypatch):
    monkeypatch.setenv("ANNEALBENCH_DATA", str(tmp_path))
    with RangeServer(Behaviour({WIKI: wiki_zip})) as url:
        monkeypatch.setenv("ANNEALBENCH_WIKITEXT103_URL", url + WIKI)
        monkeypatch.setenv("ANNEALBENCH_WIKITEXT103_MD5", _md5(wiki_zip))
        corpus = text.load_corpus(corpus="wikitext103", download=True)
    assert _leftovers(tmp_path / "wikitext103") == ["wikitext-103-raw"]
    assert corpus.tokenizer.vocab_size == 256
    assert corpus.train.dtype == torch.uint8
    assert bytes(corpus.train.tolist()) == WIKI_TEXT["train"].encode()  # 未 is 3 bytes
    assert corpus.tokenizer.decode(corpus.val) == WIKI_TEXT["valid"]
    assert corpus.tokenizer.decode(corpus.test) == WIKI_TEXT["test"]


def test_the_char_lm_builds_on_wikitext(tmp_path, wiki_zip, monkeypatch):
    monkeypatch.setenv("ANNEALBENCH_DATA", str(tmp_path))
    with RangeServer(Behaviour({WIKI: wiki_zip})) as url:
        monkeypatch.setenv("ANNEALBENCH_WIKITEXT103_URL", url + WIKI)
        monkeypatch.setenv("ANNEALBENCH_WIKITEXT103_MD5", _md5(wiki_zip))
        task = get_task("shakespeare", "smoke", corpus="wikitext103", download=True,
                        block_size=16, max_steps=4, val_every=2, log_every=2, batch_size=4)
        module, datamodule = task.build(adamw(1e-3), seed=0)
    assert module.net.tok.num_embeddings == 256
    assert "WikiText-103" in task.describe()["data"]


def test_missing_wikitext_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNEALBENCH_DATA", str(tmp_path))
    with pytest.raises(DatasetError) as err:
        text.load_corpus(corpus="wikitext103")
    message = str(err.value)
    assert "wiki.train.raw" in message and str(tmp_path) in message
    assert "annealbench data wikitext103" in message and "download=True" in message


def test_unknown_corpus_names_the_choices():
    with pytest.raises(ValueError, match="wikitext103"):
        get_task("shakespeare", "smoke", corpus="enwik8")
