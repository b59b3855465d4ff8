"""Atomic writes: the file is filled beside its destination under a hidden temporary name and moved into place in
one step, readable by all; missing folders are made; a failed write leaves no temporary file and the old file as
it was."""
import os
import stat

import pytest

from probe.files import atomic_write


def test_the_file_is_filled_beside_its_destination_then_moved(tmp_path):
    """The writer gets a hidden `.name.*.part` file in the destination's folder (new folders made, twice over);
    what it wrote ends up at the destination with mode 0644, and nothing else is left in the folder."""
    seen = []

    def write(tmp):
        seen.append(tmp)
        tmp.write_text("first")

    path = tmp_path / "a" / "b" / "out.json"
    assert atomic_write(path, write) == path
    assert path.read_text() == "first"
    (tmp,) = seen
    assert tmp.parent == path.parent and tmp.name.startswith(".out.json.") and tmp.name.endswith(".part")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert atomic_write(str(path), lambda tmp: tmp.write_text("second")) == path   # the folder exists now
    assert path.read_text() == "second" and sorted(p.name for p in path.parent.iterdir()) == ["out.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    """A writer that fails half way: its error comes through, the old file is unchanged, the temporary is gone;
    also when the writer itself removed the temporary before failing."""
    path = tmp_path / "out.txt"
    path.write_text("old")

    def half(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    def vanish(tmp):
        tmp.unlink()
        raise RuntimeError("gone")

    for writer, message in ((half, "disk full"), (vanish, "gone")):
        with pytest.raises(RuntimeError, match=message):
            atomic_write(path, writer)
        assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
