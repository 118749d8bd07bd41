"""The seed paper's corpora, `shakespeare-char` and `wikitext103-bpe`, against a local server.

The fixtures are in the published formats: a plain-text file standing in for Tiny Shakespeare's
`input.txt`; a small but valid GPT-2 tokenizer (`vocab.bpe` with its `#version` line and merges,
`encoder.json` with GPT-2's 256 byte tokens, the merged tokens and `<|endoftext|>`); and a
`wikitext-103-raw-v1.zip` holding `wikitext-103-raw/wiki.{train,valid,test}.raw`. Everything is
served from 127.0.0.1 and named through the environment overrides or the command's flags.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math

import numpy as np
import pytest
import tiktoken
import torch
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

from annealbench.cli import main
from annealbench.tasks import DatasetError, get_task
from annealbench.tasks import download
from annealbench.tasks import shakespeare
from annealbench.tasks import text
from tests.tasks.helpers import adamw, fit, gpt2_byte_characters, gpt2_tokenizer_files
from tests.tasks.range_server import Behaviour, RangeServer, zip_of

TINY_SHAKESPEARE = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
                    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die "
                    "than to famish?\n\nAll:\nResolved. resolved.\n\n") * 12 + \
    "MENENIUS:\nWhat work's, my countrymen, in hand? where go you\nWith bats & clubs?\n"

WIKI_TEXT = {
    "train": (" \n = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : 未 記録 ( Japanese : "
              "戦場のヴァルキュリア3 , lit . Valkyria of the Battlefield 3 ) , commonly referred "
              "to as Valkyria Chronicles III outside Japan , is a tactical role @-@ playing "
              "video game . \n \n = = Gameplay = = \n \n The game 's   battle system , "
              "the BliTZ system , is carried over directly from Valkyira Chronicles .\t\n") * 6,
    "valid": (" \n = Homarus gammarus = \n \n Homarus gammarus , known as the European lobster "
              "or common lobster , is a species of clawed lobster from the eastern Atlantic "
              "Ocean , Mediterranean Sea and parts of the Black Sea . \n \n") * 4,
    "test": (" \n = Robert Boulter = \n \n Robert Boulter is an English film , television and "
             "theatre actor . He had a guest @-@ starring role on the television series The "
             "Bill in 2000 .\r\n \n") * 4,
}
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "Ċ"), ("Ġ", "="), ("e", "r"),
          ("i", "n"), ("Ġ", "a"), ("o", "n"), ("Ġ", "s"), ("a", "l"), ("Ġ", "Ġ"), ("Ċ", "Ġ")]
N_VOCAB = 256 + len(MERGES) + 1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNEALBENCH_DATA", str(tmp_path / "cache"))
    text._tokenised.cache_clear()
    yield
    text._tokenised.cache_clear()


# --- the pinned constants ------------------------------------------------------------------


def test_the_gpt2_constants_are_those_tiktoken_pins(monkeypatch):
    """`tiktoken_ext.openai_public.gpt2()` run with its file reader replaced by a recorder: the
    URLs, SHA-256s, pattern, special token and vocabulary size it would use are ours."""
    from tiktoken_ext import openai_public

    recorded = {}
    monkeypatch.setattr(openai_public, "data_gym_to_mergeable_bpe_ranks",
                        lambda **kwargs: recorded.update(kwargs) or {})
    published = openai_public.gpt2()
    assert recorded == {"vocab_bpe_file": text.GPT2_VOCAB_BPE.url,
                        "encoder_json_file": text.GPT2_ENCODER_JSON.url,
                        "vocab_bpe_hash": text.GPT2_VOCAB_BPE.sha256,
                        "encoder_json_hash": text.GPT2_ENCODER_JSON.sha256}
    assert published["pat_str"] == text.GPT2_PAT_STR
    assert published["special_tokens"] == {text.GPT2_ENDOFTEXT: text.GPT2_N_VOCAB - 1}
    assert published["explicit_n_vocab"] == text.GPT2_N_VOCAB
    source = inspect.getsource(openai_public)  # and in its text, should the function change
    for constant in (text.GPT2_VOCAB_BPE.sha256, text.GPT2_ENCODER_JSON.sha256,
                     text.GPT2_VOCAB_BPE.url, text.GPT2_ENCODER_JSON.url):
        assert constant in source


def test_the_published_sources_are_pinned():
    assert text.SHAKESPEARE_CHAR.url == ("https://raw.githubusercontent.com/karpathy/char-rnn/"
                                         "master/data/tinyshakespeare/input.txt")
    assert text.SHAKESPEARE_CHAR.sha256 == \
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert {"shakespeare-char", "wikitext103-bpe"} <= set(text.CORPORA)


def test_the_fixture_tokenizer_uses_gpt2s_byte_ids():
    table = gpt2_byte_characters()
    ids = {table[b]: i for i, b in enumerate(table)}
    assert ids["!"] == 0 and ids["Ġ"] == 220 and ids["Ċ"] == 198 and len(ids) == 256


# --- shakespeare-char ----------------------------------------------------------------------


def test_shakespeare_char_is_fetched_split_as_nanogpt_and_trains(tmp_path, capsys):
    data = TINY_SHAKESPEARE.encode()
    behaviour = Behaviour({"/input.txt": data})
    with RangeServer(behaviour) as url:
        args = ["data", "shakespeare-char", "--url", url + "/input.txt", "--sha256", _sha256(data)]
        assert main(args) == 0
        assert main(args) == 0  # there and verified: nothing is fetched again
    folder = tmp_path / "cache" / "shakespeare-char"
    n, cut = len(TINY_SHAKESPEARE), int(len(TINY_SHAKESPEARE) * 0.9)
    assert f"shakespeare-char: {cut} training and {n - cut} held-out characters in {folder}\n" \
        in capsys.readouterr().out
    assert behaviour.requests == [("/input.txt", None)]
    assert (folder / "input.txt").read_bytes() == data
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == \
        ["input.txt"]

    corpus = text.load_corpus(corpus="shakespeare-char")
    assert corpus.tokenizer.chars == "".join(sorted(set(TINY_SHAKESPEARE)))
    assert text.vocab_size(corpus="shakespeare-char") == len(set(TINY_SHAKESPEARE))
    assert corpus.tokenizer.decode(corpus.train) == TINY_SHAKESPEARE[:cut]
    assert corpus.tokenizer.decode(corpus.test) == TINY_SHAKESPEARE[cut:]
    assert torch.equal(corpus.val, corpus.test)  # nanoGPT's one held-out split

    task = get_task("shakespeare", "smoke", corpus="shakespeare-char", max_steps=3, val_every=3,
                    log_every=1, batch_size=4, val_tokens=0)
    module, logger, _ = fit(task, adamw(1e-3))
    assert module.net.tok.num_embeddings == len(set(TINY_SHAKESPEARE))
    assert [s for s, _ in logger.series("train/loss")] == [1, 2, 3]
    assert all(math.isfinite(v) for _, _, v in logger.rows)
    (_, val), = logger.series("val/loss")
    (_, test), = logger.series("test/loss")
    assert val == pytest.approx(test)  # the same characters
    block = task.config.block_size
    evaluated = (n - cut - 1) // block * block  # val_tokens=0: the whole split, whole windows
    assert task.spec.splits(task.config) == {"train": cut, "val": evaluated, "test": evaluated}
    assert "val = test" in task.describe()["data"]


def test_shakespeare_char_with_a_wrong_digest_is_refused_and_removed(tmp_path, capsys):
    data = TINY_SHAKESPEARE.encode()
    wrong = "ab" * 32
    with RangeServer(Behaviour({"/input.txt": data})) as url:
        code = main(["data", "shakespeare-char", "--url", url + "/input.txt", "--sha256", wrong])
    assert code == 2
    err = capsys.readouterr().err
    assert f"SHA-256 {_sha256(data)}" in err and f"expected {wrong}" in err
    folder = tmp_path / "cache" / "shakespeare-char"
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []


def test_shakespeare_char_download_option_uses_the_environment(tmp_path, monkeypatch):
    data = TINY_SHAKESPEARE.encode()
    behaviour = Behaviour({"/t.txt": data})
    with RangeServer(behaviour) as url:
        monkeypatch.setenv("ANNEALBENCH_SHAKESPEARE_CHAR_URL", url + "/t.txt")
        monkeypatch.setenv("ANNEALBENCH_SHAKESPEARE_CHAR_SHA256", _sha256(data).upper())
        task = get_task("shakespeare", "smoke", corpus="shakespeare-char", download=True)
        module, _ = task.build(adamw(1e-3), seed=0)
    assert behaviour.requests == [("/t.txt", None)]
    assert module.net.tok.num_embeddings == len(set(TINY_SHAKESPEARE))
    # a copy that is not the expected file is fetched again
    (tmp_path / "cache" / "shakespeare-char" / "input.txt").write_text("altered")
    with RangeServer(behaviour) as url:
        monkeypatch.setenv("ANNEALBENCH_SHAKESPEARE_CHAR_URL", url + "/t.txt")
        download.ensure_file(text.SHAKESPEARE_CHAR)
    assert len(behaviour.requests) == 2
    assert (tmp_path / "cache" / "shakespeare-char" / "input.txt").read_bytes() == data


def test_the_override_flags_say_where_they_apply(capsys):
    assert main(["data", "shakespeare-char", "--md5", "0" * 32]) == 2
    assert "use --sha256" in capsys.readouterr().err
    assert main(["data", "wikitext103", "--sha256", "0" * 64]) == 2
    assert "use --md5" in capsys.readouterr().err
    assert main(["data", "wikitext103-bpe", "--url", "http://127.0.0.1:9/x"]) == 2
    err = capsys.readouterr().err
    for name in ("ANNEALBENCH_WIKITEXT103_MD5", "ANNEALBENCH_GPT2_VOCAB_BPE_SHA256",
                 "ANNEALBENCH_GPT2_ENCODER_JSON_URL"):
        assert name in err


# --- wikitext103-bpe -----------------------------------------------------------------------


@pytest.fixture()
def served(monkeypatch):
    """The WikiText zip and the tokenizer files on a local server, named by the environment."""
    vocab, encoder = gpt2_tokenizer_files(MERGES)
    archive = zip_of({f"wikitext-103-raw/wiki.{k}.raw": v.encode() for k, v in WIKI_TEXT.items()})
    behaviour = Behaviour({"/w.zip": archive, "/vocab.bpe": vocab, "/encoder.json": encoder})
    with RangeServer(behaviour) as url:
        monkeypatch.setenv("ANNEALBENCH_WIKITEXT103_URL", url + "/w.zip")
        monkeypatch.setenv("ANNEALBENCH_WIKITEXT103_MD5", hashlib.md5(archive).hexdigest())
        monkeypatch.setenv("ANNEALBENCH_GPT2_VOCAB_BPE_URL", url + "/vocab.bpe")
        monkeypatch.setenv("ANNEALBENCH_GPT2_VOCAB_BPE_SHA256", _sha256(vocab))
        monkeypatch.setenv("ANNEALBENCH_GPT2_ENCODER_JSON_URL", url + "/encoder.json")
        monkeypatch.setenv("ANNEALBENCH_GPT2_ENCODER_JSON_SHA256", _sha256(encoder))
        yield behaviour


def _reference_encoding(folder) -> tiktoken.Encoding:
    """GPT-2's encoding as `tiktoken_ext.openai_public.gpt2` builds it, from the fixture files."""
    from tiktoken_ext import openai_public

    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=str(folder / "vocab.bpe"),
                                            encoder_json_file=str(folder / "encoder.json"))
    return tiktoken.Encoding(name="gpt2-fixture", pat_str=openai_public.r50k_pat_str,
                             mergeable_ranks=ranks,
                             special_tokens={openai_public.ENDOFTEXT: len(ranks)},
                             explicit_n_vocab=len(ranks) + 1)


def test_gpt2_bpe_fetches_the_tokenizer_files(tmp_path, served, capsys):
    assert main(["data", "gpt2-bpe"]) == 0
    folder = tmp_path / "cache" / "gpt2-bpe"
    assert capsys.readouterr().out == \
        f"gpt2-bpe: GPT-2's BPE (vocab.bpe, encoder.json), vocabulary {N_VOCAB}, in {folder}\n"
    encoding = text.gpt2_encoding()
    assert encoding.n_vocab == N_VOCAB
    assert encoding.encode_ordinary(" the\n") == [256 + 2, 198]  # "Ġthe", "Ċ"
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [N_VOCAB - 1]


def test_wikitext103_bpe_is_tokenised_once_and_trains_from_the_bins_alone(
        tmp_path, served, capsys, monkeypatch):
    monkeypatch.setattr(text, "TOKENISE_CHUNK", 37)  # many pieces, cut at safe places
    assert main(["data", "wikitext103-bpe"]) == 0
    cache = tmp_path / "cache"
    folder = cache / "wikitext103" / "gpt2-bpe"
    reference = _reference_encoding(cache / "gpt2-bpe")
    expected = {split: reference.encode_ordinary(WIKI_TEXT[raw])
                for split, raw in (("train", "train"), ("val", "valid"), ("test", "test"))}
    for split, ids in expected.items():
        assert np.fromfile(folder / f"{split}.bin", dtype=np.uint16).tolist() == ids
    counts = [len(expected[s]) for s in ("train", "val", "test")]
    assert capsys.readouterr().out == (f"wikitext103-bpe: {counts[0]} training, {counts[1]} "
                                       f"validation, {counts[2]} test tokens in {folder}\n")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["n_vocab"] == N_VOCAB and meta["dtype"] == "uint16"
    assert meta["tokens"] == dict(zip(("train", "val", "test"), counts))
    assert meta["sources"]["vocab.bpe"] == {"sha256": _sha256(served.files["/vocab.bpe"])}
    assert meta["sources"]["wikitext-103-raw-v1.zip"] == \
        {"md5": hashlib.md5(served.files["/w.zip"]).hexdigest()}
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "test.bin", "train.bin",
                                                        "val.bin"]

    made = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
    requests = list(served.requests)
    assert len(requests) == 3
    assert main(["data", "wikitext103-bpe"]) == 0  # a second call does nothing
    assert served.requests == requests
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()} == made

    # a run reads only the bins: the raw text and the tokenizer files may be gone
    for gone in (cache / "wikitext103" / "wikitext-103-raw", cache / "gpt2-bpe"):
        for path in gone.iterdir():
            path.unlink()
        gone.rmdir()
    text._tokenised.cache_clear()
    assert text.vocab_size(corpus="wikitext103-bpe") == N_VOCAB
    task = get_task("shakespeare", "smoke", corpus="wikitext103-bpe", block_size=16,
                    max_steps=2, val_every=2, log_every=1, batch_size=4, val_tokens=0)
    module, logger, _ = fit(task, adamw(1e-3))
    assert module.net.tok.num_embeddings == N_VOCAB
    assert [s for s, _ in logger.series("train/loss")] == [1, 2]
    assert all(math.isfinite(v) for _, _, v in logger.rows)
    assert "GPT-2's BPE" in task.describe()["data"]
    assert served.requests == requests


def test_a_damaged_or_stale_preparation_is_refused_and_made_again(tmp_path, served, monkeypatch):
    text.load_corpus(corpus="wikitext103-bpe", download=True)
    assert len(served.requests) == 3
    folder = tmp_path / "cache" / "wikitext103" / "gpt2-bpe"
    good = (folder / "val.bin").read_bytes()
    (folder / "val.bin").write_bytes(b"\0\0")
    text._tokenised.cache_clear()
    with pytest.raises(DatasetError, match="are incomplete") as err:
        text.load_corpus(corpus="wikitext103-bpe")
    assert "annealbench data wikitext103-bpe" in str(err.value)
    text.load_corpus(corpus="wikitext103-bpe", download=True)  # from the files in the cache
    assert len(served.requests) == 3 and (folder / "val.bin").read_bytes() == good
    monkeypatch.setenv("ANNEALBENCH_GPT2_VOCAB_BPE_SHA256", "f" * 64)  # another tokenizer
    text._tokenised.cache_clear()
    with pytest.raises(DatasetError, match="are stale") as err:
        text.load_corpus(corpus="wikitext103-bpe")
    assert "annealbench data wikitext103-bpe" in str(err.value)


def test_missing_data_names_the_command(tmp_path):
    with pytest.raises(DatasetError) as err:
        text.load_corpus(corpus="shakespeare-char")
    assert "annealbench data shakespeare-char" in str(err.value)
    assert str(tmp_path / "cache" / "shakespeare-char" / "input.txt") in str(err.value)
    with pytest.raises(DatasetError) as err:
        text.load_corpus(corpus="wikitext103-bpe")
    assert "annealbench data wikitext103-bpe" in str(err.value)
    assert str(tmp_path / "cache" / "wikitext103" / "gpt2-bpe") in str(err.value)
    with pytest.raises(DatasetError, match="annealbench data gpt2-bpe"):
        text.gpt2_encoding()
    assert text.vocab_size(corpus="wikitext103-bpe") == 50257  # GPT-2's, before any data
    with pytest.raises(DatasetError, match="annealbench data shakespeare-char"):
        text.vocab_size(corpus="shakespeare-char")


# --- tokenising in pieces ------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 16, 1 << 20])
def test_tokenising_in_pieces_equals_encoding_the_whole_text(tmp_path, chunk, monkeypatch):
    """GPT-2's pre-tokenizer looks ahead over whitespace; the cuts never change a token."""
    vocab, encoder = gpt2_tokenizer_files(MERGES)
    (tmp_path / "vocab.bpe").write_bytes(vocab)
    (tmp_path / "encoder.json").write_bytes(encoder)
    encoding = _reference_encoding(tmp_path)
    tricky = ("a  \n \n b\t\n\nc \r\n d'  s 's n't  \u00a0 x\u3000y  12 , 345\n\n\n  \n"
              "  ends with spaces   \n  \n\tq ? ! ... \u2028z \n") * 3 + "  last  "
    monkeypatch.setattr(text, "TOKENISE_CHUNK", chunk)
    for sample in (tricky, WIKI_TEXT["train"], WIKI_TEXT["test"], "x", " ", ""):
        (tmp_path / "raw").write_bytes(sample.encode())
        count = text._tokenise_file(tmp_path / "raw", tmp_path / "ids.bin", encoding)
        ids = np.fromfile(tmp_path / "ids.bin", dtype=np.uint16).tolist()
        assert ids == encoding.encode_ordinary(sample) and count == len(ids)
        assert not (tmp_path / "ids.bin.tmp").exists()


def test_val_tokens_zero_evaluates_the_whole_split():
    cfg = get_task("shakespeare", "smoke", val_tokens=0, block_size=8).config
    inputs, targets = shakespeare.consecutive(torch.arange(100), cfg)
    assert inputs.shape == (12, 8) and targets[-1, -1] == 96  # 99 targets: 12 whole windows
    with pytest.raises(ValueError, match="val_tokens must be >= 0"):
        get_task("shakespeare", "smoke", val_tokens=-1)
