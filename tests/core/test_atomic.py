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


def test_a_failed_write_leaves_none_of_the_folders_it_made(tmp_path):
    from segopt_core.atomic import atomic_file

    def crash(tmp: Path) -> None:
        raise OSError(28, "No space left on device")

    for write in (atomic_file, atomic_folder):
        with pytest.raises(OSError):
            write(tmp_path / "a" / "b" / "out", crash)
        assert list(tmp_path.iterdir()) == []  # not even the empty a/b/ it created


def test_one_mode_policy_whatever_library_wrote_the_file(tmp_path):
    """safetensors writes 0600 and mkdtemp makes 0700 folders: segopt's files are FILE_MODE / DIR_MODE."""
    import os
    import stat

    import torch
    from safetensors.torch import save_file

    from segopt_core.atomic import DIR_MODE, FILE_MODE, atomic_file

    atomic_folder(
        tmp_path / "model", lambda tmp: save_file({"w": torch.zeros(1)}, str(tmp / "w.safetensors"))
    )
    single = atomic_file(tmp_path / "w.safetensors", lambda tmp: save_file({"w": torch.zeros(1)}, str(tmp)))
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "model") == DIR_MODE and mode(tmp_path / "model" / "w.safetensors") == FILE_MODE
    assert mode(single) == FILE_MODE and not FILE_MODE & 0o111  # e.g. 0644 / 0755 under umask 022


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 300, "is 300 bytes; names here may have"),
        ("/".join(["y" * 200] * 25), r"bytes long \(absolute\)"),
    ],
)
def test_a_path_the_file_system_cannot_hold_is_one_line_naming_it(tmp_path, name, message):
    from segopt_core.atomic import check_target_path
    from segopt_core.errors import OptionError

    with pytest.raises(OptionError, match=message) as err:
        check_target_path(tmp_path / name)
    assert "\n" not in str(err.value) and ".tmp" not in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OptionError, match="a file is there, not a folder"):
        check_target_path(tmp_path / "file", folder=True)


def test_an_atomic_write_with_too_long_a_name_names_the_target_not_the_temp_file(tmp_path):
    from segopt_core.atomic import write_text_atomic

    target = tmp_path / ("z" * 250)  # fits the file system, its temp name does not
    with pytest.raises(OSError, match="file name too long") as err:
        write_text_atomic(target, "x")
    assert err.value.filename == str(target) and ".tmp" not in str(err.value)
