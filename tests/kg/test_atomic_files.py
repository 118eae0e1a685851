import os
import stat

import pytest

from kg.atomic_files import atomic_path, write_bytes_atomic, write_text_atomic


def test_write_replaces_whole_file_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "report.md"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "data.bin"
    write_bytes_atomic(target, b"complete")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target, suffix=".bin") as tmp:
            assert tmp.suffix == ".bin" and tmp.parent == tmp_path
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]
