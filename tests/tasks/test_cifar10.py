"""CIFAR-10 on a fixture written in the exact python-batch format: reading, checks, training."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from tasks import DatasetError, cifar_data, get_task
from tasks.cifar10 import PAD, augment
from tests.tasks.helpers import adamw, fit, write_cifar_fixture, write_manifest


@pytest.fixture()
def cifar_root(tmp_path):
    write_cifar_fixture(tmp_path, per_batch=40)
    cifar_data.load.cache_clear()
    yield tmp_path
    cifar_data.load.cache_clear()


def test_fixture_is_read_and_verified(cifar_root):
    data = cifar_data.load(str(cifar_root))
    assert data["train_x"].shape == (200, 3, 32, 32) and data["train_x"].dtype == torch.uint8
    assert data["test_x"].shape == (40, 3, 32, 32)
    raw = pickle.loads((cifar_root / "cifar-10-batches-py" / "data_batch_2").read_bytes())
    first = torch.from_numpy(raw[b"data"][0].reshape(3, 32, 32))
    assert torch.equal(data["train_x"][40], first)  # batch order and channel-major layout kept
    assert data["train_y"][40:80].tolist() == raw[b"labels"]


def test_the_folder_itself_may_hold_the_batches(cifar_root):
    assert cifar_data.find_batches(cifar_root / "cifar-10-batches-py").name == \
        "cifar-10-batches-py"


@pytest.mark.parametrize("model", ["resnet18", "vit"])
def test_smoke_training_on_the_fixture(cifar_root, model):
    task = get_task("cifar10", "smoke", data_dir=str(cifar_root), model=model)
    module, logger, _ = fit(task, adamw(3e-3), seed=1)
    losses = [v for _, v in logger.series("train/loss")]
    assert losses[-1] < losses[0]
    assert {k for _, k, _ in logger.rows} >= {"val/loss", "val/acc"}
    assert module.diverged_at_step is None


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError) as err:
        get_task("cifar10", "smoke", data_dir=str(tmp_path)).build(adamw(1e-3), seed=0)
    message = str(err.value)
    assert str(tmp_path) in message and cifar_data.URL in message
    assert "ANNEALBENCH_DATA" in message and "download=True" in message


def test_default_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ANNEALBENCH_DATA", str(tmp_path))
    assert cifar_data.default_root() == tmp_path / "cifar10"
    monkeypatch.delenv("ANNEALBENCH_DATA")
    assert cifar_data.default_root().parts[-3:] == (".cache", "annealbench", "cifar10")


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _rewrite(path, change):
    batch = pickle.loads(path.read_bytes())
    change(batch)
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _label(value):
    def change(batch):
        batch[b"labels"][3] = value
    return change


@pytest.mark.parametrize("damage, refresh_manifest, words", [
    (_truncate, False, ["data_batch_3", "fails its checksum"]),
    (_truncate, True, ["data_batch_3", "cannot be read"]),
    (lambda p: _rewrite(p, _label(10)), True, ["data_batch_3", "label 10", "0..9"]),
    (lambda p: _rewrite(p, _label(-1)), True, ["data_batch_3", "label -1"]),
    (lambda p: _rewrite(p, lambda b: b[b"labels"].pop()), True, ["data_batch_3", "labels"]),
    (lambda p: _rewrite(p, lambda b: b.update({b"data": b[b"data"][:, :100]})), True,
     ["data_batch_3", "shape (40, 100)", "(40, 3072)"]),
    (lambda p: _rewrite(p, lambda b: b.update({b"data": b[b"data"].astype(np.float32)})), True,
     ["data_batch_3", "float32"]),
    (lambda p: _rewrite(p, lambda b: b.pop(b"labels")), True, ["data_batch_3", "b'labels'"]),
    (lambda p: p.unlink(), True, ["data_batch_3", "is missing"]),
])
def test_damaged_batch_file_is_a_clear_error(cifar_root, damage, refresh_manifest, words):
    folder = cifar_root / "cifar-10-batches-py"
    damage(folder / "data_batch_3")
    if refresh_manifest:
        write_manifest(folder)
    with pytest.raises(DatasetError) as err:
        get_task("cifar10", "smoke", data_dir=str(cifar_root)).build(adamw(1e-3), seed=0)
    message = str(err.value)
    for word in words:
        assert word in message
    assert str(folder) in message and cifar_data.URL in message


def test_without_a_manifest_the_published_checksums_apply(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "MD5SUMS").unlink()
    with pytest.raises(DatasetError, match="fails its checksum") as err:
        cifar_data.load(str(cifar_root))
    assert any(digest in str(err.value) for digest in cifar_data.PUBLISHED_MD5.values())


def test_augmentation_is_a_padded_crop_with_optional_flip():
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = torch.nn.functional.pad(images, (PAD, PAD, PAD, PAD))
    flips = 0
    for img, src in zip(out, padded):
        crops = [src[:, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
        plain = any(torch.equal(img, c) for c in crops)
        flipped = any(torch.equal(img, c.flip(-1)) for c in crops)
        assert plain or flipped
        flips += flipped and not plain
    assert 0 < flips < len(out)
    again = augment(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


class _WritesAFile:
    """What a crafted batch could hold: unpickling it would create `target`."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import pathlib
        return pathlib.Path.touch, (pathlib.Path(self.target),)


def test_a_batch_that_would_run_code_is_refused_without_running_it(cifar_root, tmp_path):
    folder = cifar_root / "cifar-10-batches-py"
    target = tmp_path / "written-by-the-pickle"
    crafted = pickle.dumps({b"data": _WritesAFile(str(target)), b"labels": []}, protocol=2)
    assert b"pathlib" in crafted  # plain pickle.loads(crafted) would create `target`
    (folder / "data_batch_2").write_bytes(crafted)
    write_manifest(folder)  # the checksum matches: the manifest is as user-controlled as the file
    with pytest.raises(DatasetError) as err:
        cifar_data.load(str(cifar_root))
    assert "data_batch_2" in str(err.value) and "refused" in str(err.value)
    assert "getattr, which a CIFAR-10 batch never holds" in str(err.value)
    assert not target.exists()


def test_the_unpickler_admits_a_real_batch_written_by_python2_numpy(tmp_path):
    """A batch pickled the way the published files were (numpy.core paths, bytes keys)."""
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    raw = pickle.dumps({b"data": data, b"labels": [1, 2]}, protocol=2)
    legacy = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in legacy
    path = tmp_path / "data_batch_1"
    path.write_bytes(legacy)
    with path.open("rb") as f:
        batch = cifar_data.BatchUnpickler(f, encoding="bytes").load()
    assert np.array_equal(batch[b"data"], data) and batch[b"labels"] == [1, 2]


def test_training_batches_are_a_function_of_seed_and_step(cifar_root):
    """Augmentation draws from (seed, step): a resumed run sees exactly the same batches."""
    task = get_task("cifar10", "smoke", data_dir=str(cifar_root), batch_size=8)

    def batches(seed, steps):
        _, datamodule = task.build(adamw(1e-3), seed=seed)
        return [datamodule.make_batch(k)[0] for k in steps]

    first = batches(1, [0, 1, 2, 3])
    assert all(torch.equal(a, b) for a, b in zip(first[2:], batches(1, [2, 3])))
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first[0], batches(2, [0])[0])
