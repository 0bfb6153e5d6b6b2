"""Atomic writes: an output appears whole or not at all, and killed writes leave no debris."""

import pytest

from sdclr.io import atomic_path, remove_stale_temporaries, write_text


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    """An exception during a write leaves the old content in place and no temporary file."""
    target = tmp_path / "resume.pt"
    write_text(target, "good checkpoint")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of a new one")
        raise RuntimeError("killed")
    assert target.read_text() == "good checkpoint"
    assert list(tmp_path.iterdir()) == [target]


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    """The temporary files a SIGKILL leaves behind are removed; finished outputs stay."""
    write_text(tmp_path / "resume.pt", "good")
    (tmp_path / ".resume.pt.abc123.tmp").write_text("partial")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".resume.pt.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume.pt"]
