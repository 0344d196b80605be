"""Files written whole or not at all (tuner.runtime.files), the one writer every room uses."""

from __future__ import annotations

import pytest

from tuner.runtime import replaced


def test_a_block_that_raises_leaves_the_old_file_and_no_part_file(tmp_path):
    path = tmp_path / "kept.json"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), replaced(path) as f:
        f.write(b"half of the new")
        raise RuntimeError("the disk filled")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]


def test_a_block_that_ends_puts_the_whole_file_in_place(tmp_path):
    path = tmp_path / "new.pt"
    with replaced(path, durable=False) as f:
        f.write(b"x" * 3_000_000)
        assert not path.exists()  # nobody sees it half written
    assert path.stat().st_size == 3_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.pt"]
