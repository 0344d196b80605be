"""docs/reliability.md names only tests that exist and belong to the reliability suite: the
markers are read from the collected tests themselves (``-m reliability``), not from a list."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import ROOT


def test_every_test_the_reliability_doc_names_is_in_the_suite():
    named = set(re.findall(r"`(test_\w+)`", (ROOT / "docs" / "reliability.md").read_text()))
    defined = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.M))
    assert len(named) > 30
    missing = named - defined
    assert not missing, f"docs/reliability.md names tests that do not exist: {sorted(missing)}"
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "reliability",
                                "-p", "no:cacheprovider", "tests"], cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
    marked = {re.sub(r"\[.*$", "", line.rsplit("::", 1)[-1]) for line in collected.stdout.splitlines() if "::" in line}
    assert len(marked) > 30, collected.stdout + collected.stderr
    outside = named - marked
    assert not outside, f"named in docs/reliability.md but not marked reliability: {sorted(outside)}"
