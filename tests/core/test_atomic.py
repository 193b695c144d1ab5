"""Atomic writes (segopt_core/atomic.py): readers see the old version or the whole new one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segopt_core.atomic import atomic_folder, write_json_atomic


def test_an_atomic_folder_is_swapped_in_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    atomic_folder(target, lambda tmp: (tmp / "a.txt").write_text("1"))
    atomic_folder(target, lambda tmp: (tmp / "b.txt").write_text("2"))  # replaces the previous folder

    def crash(tmp: Path) -> None:
        (tmp / "c.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_folder(target, crash)
    assert [p.name for p in target.iterdir()] == ["b.txt"] and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_json_is_written_whole_and_values_json_lacks_become_strings(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "r.json", {"path": Path("/x"), "n": 1}, sort_keys=True)
    assert json.loads(path.read_text()) == {"n": 1, "path": "/x"} and list(path.parent.iterdir()) == [path]
