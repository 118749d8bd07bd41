"""Registry entries from outside the project: entry points and `module:Name` references.

A plug-in is the same kind of object the built-in table holds (an `OptimInfo`, a `TaskSpec`),
found in one of two ways:

- an **entry point** in group `annealbench.optimizers` or `annealbench.tasks` of an installed
  distribution (`[project.entry-points."annealbench.optimizers"] lion = "mypkg.lion:LION"`); the
  entry point's name is the name a suite uses and must equal the object's `name`;
- a **reference** `module:Name` (`mypkg.lion:LION`, `Name` may be dotted) written directly in a
  suite; the reference itself is then the name runs record, so every process (pool workers,
  cluster jobs, the report) imports the object the same way.

Nothing is imported until a name is looked up, and looking one name up loads only the entry
points that claim it, so a broken plug-in fails the suites that use it, not every suite. An
entry point that claims a built-in's name, or a name two distributions claim, is an error on
lookup of that name. Dependency-free on purpose (the standard library only).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from typing import Any

OPTIMIZER_GROUP = "annealbench.optimizers"
TASK_GROUP = "annealbench.tasks"
# `package.module:Name` or `package.module:Outer.Name`: Python identifiers joined by dots
_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# A plug-in's name in a suite: the same alphabet as the built-ins' names
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PluginError(ValueError):
    """A plug-in that cannot be used: it does not import, names nothing, is the wrong kind of
    object, or claims a name another entry already has."""


def is_reference(name: str) -> bool:
    """Whether `name` has the form of a `module:Name` reference (nothing is imported)."""
    return isinstance(name, str) and ":" in name


def check_reference(name: str) -> None:
    """Raise `PluginError` unless `name` is written `module:Name` (syntax only)."""
    if not isinstance(name, str) or not _REFERENCE.match(name):
        raise PluginError(f"{name!r} is not a reference `module:Name` (e.g. mypkg.lion:LION): "
                          "dotted Python identifiers on each side of one ':'")


def load_reference(name: str, kind: type, what: str) -> Any:
    """The object `module:Name` refers to; `PluginError` saying which part failed.

    `kind`: the class the object must be an instance of; `what`: its name in messages
    (`optimizer`, `task`).
    """
    check_reference(name)
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise PluginError(f"{what} {name!r}: module {module_name!r} cannot be imported ({err}); "
                          "is its package installed, or its folder on PYTHONPATH?") from err
    except Exception as err:  # the plug-in's own code failed while importing
        raise PluginError(f"{what} {name!r}: importing module {module_name!r} raised "
                          f"{type(err).__name__}: {err}") from err
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            found = sorted(k for k, v in vars(module).items() if isinstance(v, kind))
            hint = f"its {kind.__name__} objects: {', '.join(found)}" if found else \
                f"it defines no {kind.__name__}"
            raise PluginError(f"{what} {name!r}: module {module_name!r} has no attribute "
                              f"{attribute!r} ({hint})")
        value = getattr(value, part)
    _check_kind(value, kind, f"{what} {name!r}")
    return value


def _check_kind(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        found = f"the class {value.__module__}.{value.__qualname__}" if isinstance(value, type) else \
            f"a {type(value).__module__}.{type(value).__qualname__}"
        raise PluginError(f"{where} is {found}, not a registry entry of kind {kind.__qualname__} "
                          f"({kind.__module__}.{kind.__qualname__}, as the built-ins are)")


@lru_cache(maxsize=None)
def entry_points(group: str) -> tuple[metadata.EntryPoint, ...]:
    """The entry points of `group` in every installed distribution (read once per process;
    `entry_points.cache_clear()` reads them again)."""
    return tuple(metadata.entry_points(group=group))


def _origin(point: metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return f"entry point {point.name} = {point.value!r} of distribution " \
           f"{dist.metadata['Name'] if dist is not None else '?'}"


def entry_point_names(group: str) -> tuple[str, ...]:
    """The names the entry points of `group` declare (none is loaded)."""
    return tuple(dict.fromkeys(p.name for p in entry_points(group)))


def load_entry_point(group: str, name: str, kind: type, what: str,
                     builtins: Mapping[str, Any]) -> Any | None:
    """The object the entry point `name` of `group` names, or None when none claims `name`.

    `PluginError` when `name` is a built-in's (`builtins`) that an entry point claims too, when
    two entry points claim it, or when the one that does cannot be loaded or loads the wrong
    kind of object or one whose `name` is not `name`.
    """
    claims = [p for p in entry_points(group) if p.name == name]
    claims = list({p.value: p for p in claims}.values())  # one distribution seen twice on the path
    if not claims:
        return None
    if name in builtins:
        raise PluginError(f"{_origin(claims[0])} reuses the name of the built-in {what} {name!r}; "
                          f"give the plug-in another name")
    if len(claims) > 1:
        raise PluginError(f"two plug-ins claim the {what} name {name!r}: "
                          f"{'; '.join(_origin(p) for p in claims)}; uninstall or rename one")
    (point,) = claims
    if not _NAME.match(name):
        raise PluginError(f"{_origin(point)}: the name must be letters, digits, '_', '.', '-' "
                          "(starting with a letter or digit)")
    try:
        value = point.load()
    except Exception as err:  # missing module, missing attribute, or the plug-in's own error
        raise PluginError(f"{_origin(point)} cannot be loaded: {type(err).__name__}: {err}") from err
    _check_kind(value, kind, _origin(point))
    if getattr(value, "name", None) != name:
        raise PluginError(f"{_origin(point)} loads a {kind.__name__} named "
                          f"{getattr(value, 'name', None)!r}: the two names must agree")
    return value


def lookup(name: str, *, builtins: Mapping[str, Any], group: str, kind: type,
           what: str) -> Any:
    """The registry entry called `name`: a built-in, an entry point of `group`, or a reference.

    Raises `PluginError` (a `ValueError`) naming what is wrong and what is allowed.
    """
    if not isinstance(name, str):
        raise PluginError(f"{what} name must be a string, got {name!r}")
    if is_reference(name):
        return load_reference(name, kind, what)
    found = load_entry_point(group, name, kind, what, builtins)
    if found is not None:
        return found
    if name in builtins:
        return builtins[name]
    plugins = [n for n in entry_point_names(group) if n not in builtins]
    raise PluginError(f"unknown {what} {name!r}; allowed: {', '.join(builtins)}"
                      + (f"; plug-ins: {', '.join(plugins)}" if plugins else "")
                      + "; or a reference module:Name")

