"""docs/SPEC.md is a copy of the project's shared SPEC (the contract every clause id cites)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "SPEC.md"


@pytest.mark.skipif(not SHARED.exists(), reason="no shared/ folder beside this checkout")
def test_docs_spec_is_the_shared_spec():
    assert (ROOT / "docs" / "SPEC.md").read_text() == SHARED.read_text()


def test_docs_spec_names_every_clause_family():
    text = (ROOT / "docs" / "SPEC.md").read_text()
    for family in ("## D", "## P", "## G", "## S", "## X", "## V", "## M", "## T", "## E"):
        assert family in text, family
    for clause in ("P9", "S4", "V1", "V2", "V3"):
        assert f"- {clause} " in text, clause
