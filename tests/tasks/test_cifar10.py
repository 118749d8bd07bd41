"""CIFAR-10 on a fixture written in the exact python-batch format: reading, checks, training."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from annealbench.perf.gpu_check import MEAN, STD, host_reference_batch
from annealbench.tasks import DatasetError, get_task
from annealbench.tasks import cifar_data
from annealbench.tasks import seeding
from annealbench.tasks.batches import EpochPermutations
from annealbench.tasks.cifar10 import PAD, augment, normalise
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


# --- training batches built on the device: the same batches as the host-built ones ------------
def _reference_batch(train_x, train_y, order, seed, augmented, step):
    """The host-built batch (`annealbench.perf.gpu_check`'s reference, written out with advanced
    indexing), or without augmentation: gathered and normalised."""
    if augmented:
        return host_reference_batch(train_x, train_y, order, seed, step)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    idx = order.indices(step)
    return (train_x[idx].float() / 255.0 - mean) / std, train_y[idx]


def _training_split(cifar_root, seed, val_images):
    data = cifar_data.load(str(cifar_root))
    perm = torch.randperm(len(data["train_y"]), generator=seeding.generator(seed, seeding.SPLIT))
    kept = perm[val_images:]
    return data["train_x"][kept], data["train_y"][kept]


@pytest.mark.parametrize("augmented", [True, False])
def test_training_batches_equal_the_host_built_ones_bit_for_bit(cifar_root, augmented):
    """Steps within an epoch and across the epoch boundary (160 images, batches of 24)."""
    task = get_task("cifar10", "smoke", data_dir=str(cifar_root), batch_size=24,
                    augment=augmented)
    seed = 3
    _, data = task.build(adamw(1e-3), seed=seed)
    train_x, train_y = _training_split(cifar_root, seed, task.config.val_images)
    order = EpochPermutations(len(train_y), 24, seed)
    for step in (0, 1, 5, 6, 7, 13, 20):
        x, y = data.make_batch(step)
        want_x, want_y = _reference_batch(train_x, train_y, order, seed, augmented, step)
        assert torch.equal(x, want_x) and torch.equal(y, want_y), step
        assert x.dtype == want_x.dtype and x.stride() == want_x.stride()  # the same layout
    assert x.is_contiguous(memory_format=torch.channels_last) == augmented


def test_evaluation_images_are_normalised_as_before(cifar_root):
    images = cifar_data.load(str(cifar_root))["test_x"]
    mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
    std = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)
    want = (images.float() / 255.0 - mean) / std
    got = normalise(images)
    assert torch.equal(got, want) and got.stride() == want.stride()
    every_value = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).expand(1, 3, 1, 256)
    assert torch.equal(normalise(every_value), (every_value.float() / 255.0 - mean) / std)


def _trainer_on(device):
    return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)),
                           global_rank=0, world_size=1, global_step=0)


def test_setup_moves_the_training_images_once_to_the_trainer_s_device(cifar_root):
    """`meta` stands for an accelerator: every tensor of a batch must be built there (an op
    mixing a host tensor with a meta tensor raises), and nothing is read back."""
    task = get_task("cifar10", "smoke", data_dir=str(cifar_root))
    _, data = task.build(adamw(1e-3), seed=1)
    data.trainer = _trainer_on("meta")
    data.setup("validate")  # no training: the images stay where they are
    assert data.training.device.type == "cpu"
    data.setup("fit")
    assert data.training.images.device.type == "meta" and data.training.labels.device.type == "meta"
    images = data.training.images
    x, y = next(iter(data.train_dataloader()))
    assert x.device.type == "meta" and y.device.type == "meta"
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (16,)
    assert x.is_contiguous(memory_format=torch.channels_last)
    data.setup("fit")
    assert data.training.images is images  # moved once


class _Batches(pl.Callback):
    def __init__(self):
        self.seen = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen[trainer.global_step] = tuple(t.clone() for t in batch)


class _SaveAfterValidation(pl.Callback):
    """The runner's checkpoint (annealbench.runner.run.checkpoint): the state after the first validation."""

    def __init__(self, path):
        self.path = path

    def on_validation_end(self, trainer, pl_module):
        if not self.path.exists():
            trainer.save_checkpoint(self.path)


def test_a_fit_trains_on_the_host_built_batches_and_a_resumed_one_continues_them(cifar_root,
                                                                                   tmp_path):
    task = get_task("cifar10", "smoke", data_dir=str(cifar_root), max_steps=6, val_every=3,
                    log_every=3)
    seed = 2
    train_x, train_y = _training_split(cifar_root, seed, task.config.val_images)
    order = EpochPermutations(len(train_y), task.config.batch_size, seed)
    whole = _Batches()
    fit(task, adamw(1e-3), seed=seed, callbacks=[whole, _SaveAfterValidation(tmp_path / "at3.ckpt")])
    assert sorted(whole.seen) == list(range(6))
    for step, (x, y) in whole.seen.items():
        want_x, want_y = _reference_batch(train_x, train_y, order, seed, True, step)
        assert torch.equal(x, want_x) and torch.equal(y, want_y), step
    resumed = _Batches()
    fit(task, adamw(1e-3), seed=seed, callbacks=[resumed], ckpt_path=str(tmp_path / "at3.ckpt"))
    assert sorted(resumed.seen) == [3, 4, 5]
    for step, batch in resumed.seen.items():
        assert all(torch.equal(a, b) for a, b in zip(batch, whole.seen[step])), step


@pytest.mark.gpu
def test_batches_built_on_a_gpu_equal_the_host_built_ones(cifar_root):
    task = get_task("cifar10", "smoke", data_dir=str(cifar_root), batch_size=24)
    _, on_host = task.build(adamw(1e-3), seed=4)
    _, on_gpu = task.build(adamw(1e-3), seed=4)
    on_gpu.training.to("cuda")
    for step in range(8):
        host, gpu = on_host.make_batch(step), on_gpu.make_batch(step)
        assert all(g.device.type == "cuda" for g in gpu)
        assert all(torch.equal(h, g.cpu()) for h, g in zip(host, gpu)), step
