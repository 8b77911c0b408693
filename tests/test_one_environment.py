"""The ``one_environment`` marker (tests/conftest.py): each such check runs once per CI.

Where NumPy < 2 (the MXNet environment) a marked test is skipped with the reason naming
where it runs, unless ``--every-environment`` is given; where NumPy >= 2 it runs.
"""

from __future__ import annotations

import importlib

import pytest

conftest = importlib.import_module("tests.conftest")


class _Item:
    """The part of a pytest item the hook reads and writes."""

    def __init__(self, nodeid: str, marked: bool) -> None:
        self.nodeid = nodeid
        self.marked = marked
        self.added: list = []

    def get_closest_marker(self, name: str):
        return pytest.mark.one_environment if self.marked and name == "one_environment" else None

    def add_marker(self, marker) -> None:
        self.added.append(marker)


class _Config:
    def __init__(self, every_environment: bool) -> None:
        self.every_environment = every_environment

    def getoption(self, name: str) -> bool:
        assert name == "every_environment", name
        return self.every_environment


def _skipped(numpy_1: bool, every_environment: bool, monkeypatch) -> list[str]:
    monkeypatch.setattr(conftest, "numpy_1_environment", lambda: numpy_1)
    items = [_Item("tests/t.py::test_marked", True), _Item("tests/t.py::test_plain", False)]
    conftest.pytest_collection_modifyitems(_Config(every_environment), items)
    skipped = []
    for item in items:
        for marker in item.added:
            assert marker.name == "skip"
            assert "numpy-2 environment" in marker.kwargs["reason"]
            skipped.append(item.nodeid.rsplit("::", 1)[1])
    return skipped


@pytest.mark.parametrize(
    ("numpy_1", "every_environment", "expected"),
    [(True, False, ["test_marked"]), (True, True, []), (False, False, []), (False, True, [])],
)
def test_one_environment_marker_skips_only_on_numpy_1_unless_asked(
    numpy_1, every_environment, expected, monkeypatch
):
    assert _skipped(numpy_1, every_environment, monkeypatch) == expected


def test_numpy_1_environment_reads_this_numpy():
    import numpy as np

    assert conftest.numpy_1_environment() == (int(np.__version__.split(".")[0]) < 2)
