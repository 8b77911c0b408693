"""The door tables (SPEC P8): docs/doors.md is written from every backend's ``DOORS``."""

from pathlib import Path

import pytest

from dropout_ref.cli.main import main
from dropout_ref.core.doors import INTERCEPT_MODULE, Door, door_table_markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "doors.md"


def _doors(backend: str) -> tuple[Door, ...]:
    try:
        return INTERCEPT_MODULE.load(backend).DOORS
    except ImportError as exc:
        pytest.skip(f"{backend} is not installed here: {exc}")


@pytest.mark.parametrize("backend", INTERCEPT_MODULE.backends)
def test_p8_docs_list_every_door_and_refusal_of_the_backend(backend):
    doors = _doors(backend)
    assert doors and all(isinstance(door, Door) for door in doors)
    names = [door.name for door in doors]
    assert len(names) == len(set(names)), f"a door is declared twice in {backend}'s DOORS"
    assert door_table_markdown(backend, doors) in PAGE.read_text(), (
        f"docs/doors.md is out of date for {backend}: rewrite its section with "
        f"`dropout-ref doors --markdown --backend {backend}`"
    )


def test_p8_door_handling_is_site_or_refused():
    with pytest.raises(ValueError, match=r"handling must be 'site' or 'refused'.*x\.y"):
        Door("x.y", "silent", "never")  # type: ignore[arg-type]


def test_doors_command_prints_each_backend_table(capsys):
    backend = next(b for b in INTERCEPT_MODULE.backends if _importable(b))
    assert main(["doors", "--backend", backend]) == 0
    out = capsys.readouterr().out
    assert f"portable_masks doors: {backend}" in out
    assert main(["doors", "--markdown", "--backend", backend]) == 0
    assert f"## {backend}\n" in capsys.readouterr().out


def _importable(backend: str) -> bool:
    try:
        INTERCEPT_MODULE.load(backend)
    except ImportError:
        return False
    return True
