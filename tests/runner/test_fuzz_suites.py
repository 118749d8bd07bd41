"""Random mutations of the shipped suites raise `SuiteError` (or load), never anything else."""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annealbench.runner.errors import SuiteError
from annealbench.runner.suite.suite import parse_suite, shipped_suites
from annealbench.runner.suite.validate import validate_suite

SHIPPED = {name: path.read_text() for name, path in shipped_suites().items()}
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                 st.lists(st.integers(-3, 3), max_size=3),
                 st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, path, action, junk):
    if not path:
        return junk
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "replace":
        parent[last] = junk
    elif action == "delete":
        del parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[f"{last}_x"] = parent.pop(last)
    elif action == "wrap":
        parent[last] = [parent[last]]
    return doc


def check(text: str, name: str) -> None:
    """Loading and validating against the real registries raises `SuiteError` or nothing."""
    try:
        validate_suite(parse_suite(text, source=f"{name}.yaml"))
    except SuiteError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SHIPPED)), data=st.data(),
       action=st.sampled_from(["replace", "delete", "rename", "wrap"]), junk=JUNK)
def test_structural_mutations(name, data, action, junk):
    doc = yaml.safe_load(SHIPPED[name])
    paths = list(_paths(doc))
    path = data.draw(st.sampled_from(paths))
    mutated = _mutate(copy.deepcopy(doc), path, action, junk)
    check(yaml.safe_dump(mutated), name)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(SHIPPED)), data=st.data())
def test_textual_mutations(name, data):
    text = SHIPPED[name]
    cut = data.draw(st.integers(0, len(text)))
    insert = data.draw(st.text(alphabet=":-[]{}, \n'\"#&*!|>%@`0123456789.eE", max_size=6))
    drop = data.draw(st.integers(0, 6))
    check(text[:cut] + insert + text[cut + drop:], name)
