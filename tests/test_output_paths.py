"""Every command that writes says in one line which path it cannot create, and exits 2 (E)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from dropout_ref.cli.commands.output_paths import (
    OutputPathError,
    prepare_output_dir,
    prepare_output_file,
)
from dropout_ref.cli.main import main


def _blocked(tmp_path: Path) -> Path:
    """A path that no one can create: its parent is a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "x"


def test_e_prepare_output_dir_creates_parents_and_names_the_bad_path(tmp_path):
    made = prepare_output_dir(tmp_path / "a" / "b")
    assert made.is_dir() and list(made.iterdir()) == []  # the probe file is gone
    bad = _blocked(tmp_path)
    with pytest.raises(OutputPathError, match=re.escape(str(bad))) as caught:
        prepare_output_dir(bad / "deeper")
    assert "a-file' is a file, not a folder" in str(caught.value)


def test_e_prepare_output_file_refuses_a_folder_and_an_uncreatable_parent(tmp_path):
    assert prepare_output_file(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"
    with pytest.raises(OutputPathError, match="it is a folder"):
        prepare_output_file(tmp_path)
    with pytest.raises(OutputPathError, match=r"x\.json"):
        prepare_output_file(_blocked(tmp_path) / "x.json")


COMMANDS = {
    "train": ["train", "--backend", "numpy", "--dataset", "digits", "--no-progress", "--out"],
    "compare": ["compare", "--backend", "numpy", "--dataset", "digits", "--no-progress", "--out"],
    "bench": ["bench", "--backend", "numpy", "--output"],
    "compare --model gpt": ["compare", "--model", "gpt", "--backend", "numpy", "--no-progress",
                            "--out"],
    "train --model gpt": ["train", "--model", "gpt", "--backend", "torch", "--no-progress",
                          "--out"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_e_uncreatable_output_path_exits_2_in_one_line(command, tmp_path, capsys):
    bad = _blocked(tmp_path)
    if command == "bench":
        bad = bad / "r.json"
    assert main([*COMMANDS[command], str(bad)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0], captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "a-file").is_dir()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_e_issue_example_proc_path(capsys):
    args = [*COMMANDS["train"], "/proc/nope/x"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        "dropout-ref train: error: cannot create output folder '/proc/nope/x': "
        "No such file or directory"
    )
