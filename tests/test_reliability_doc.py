"""docs/reliability.md names only tests that exist and belong to the reliability suite."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import RELIABILITY_FILES, RELIABILITY_TESTS

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_reliability_doc_names_is_in_the_suite():
    named = set(re.findall(r"`(test_\w+)`", (ROOT / "docs" / "reliability.md").read_text()))
    defined = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.M):
            defined[name] = path.name
    assert len(named) > 30
    missing = named - set(defined)
    assert not missing, f"docs/reliability.md names tests that do not exist: {sorted(missing)}"
    outside = {n for n in named if defined[n] not in RELIABILITY_FILES and n not in RELIABILITY_TESTS}
    assert not outside, f"named in docs/reliability.md but not marked reliability: {sorted(outside)}"
