"""Task tests: Lightning's own deprecation notices are not ours to fix."""

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    quiet = pytest.mark.filterwarnings("ignore:.*LeafSpec.*")
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(quiet)
