"""Outputs get the mode of any new file (0666 less the umask), and finding the umask never
changes it: os.umask(0), even for a moment, makes another thread's new file world-writable."""
import os
import stat

import pytest

from fairseq_relpos import scratch


@pytest.fixture
def mask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


@pytest.fixture
def umask_unchanged(monkeypatch):
    """os.umask may not be called: any call would set the process umask."""
    def refuse(*args):
        raise AssertionError("os.umask called: it sets the process umask")

    monkeypatch.setattr(os, "umask", refuse)


@pytest.mark.parametrize("source", ["proc", "probe folder"])
def test_umask_is_read_without_being_set(mask_027, umask_unchanged, monkeypatch, tmp_path, source):
    if source == "probe folder":  # no /proc (macOS, a sandbox)
        monkeypatch.setattr(scratch, "_STATUS", str(tmp_path / "no-such-status"))
    elif not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc/self/status here")
    assert scratch.umask() == mask_027


def test_written_output_has_the_mode_of_a_new_file(mask_027, tmp_path):
    out = tmp_path / "out.txt"
    scratch.write_atomically(out, lambda f: f.write("x"), mode="w")
    (tmp_path / "plain.txt").write_text("x")
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o640
