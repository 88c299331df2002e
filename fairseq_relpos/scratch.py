"""Hidden scratch files and folders beside an output, which a later run cleans after a kill.

Every output is written under a scratch name in its own folder (same file system, so the final
rename is atomic) and renamed into place when complete. A kill -9 or a full disk can leave the
scratch entry behind; its name says what it is: ``.NAME.XXXXXXXX.fairseq-relpos.tmp``.

The writer holds an exclusive ``flock`` on its scratch entry while it lives. The kernel drops
that lock when the process ends, however it ends, so an entry whose lock another process can
take belongs to no live writer: :func:`clean_stale` (run by every command before it writes in a
folder) removes those. An old output moved aside while its replacement is renamed into place
(``.NAME.XXXXXXXX.fairseq-relpos.old``) is put back instead when the kill came before the
replacement arrived, so a kill never loses both.
"""
import fcntl
import os
import shutil
import tempfile
import time

TMP = ".fairseq-relpos.tmp"
OLD = ".fairseq-relpos.old"
# A writer creates its entry and locks it a moment later; never take an entry that young.
_YOUNG_S = 5.0


def _lock(path):
    """An fd holding an exclusive lock on ``path`` (file or folder), or None if it is held."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _name(output):
    return f".{os.path.basename(output)}."


def scratch_file(output):
    """A new empty scratch file beside ``output``: ``(path, fd)``; the fd holds the lock."""
    folder = os.path.dirname(os.path.abspath(output))
    fd, path = tempfile.mkstemp(dir=folder, prefix=_name(output), suffix=TMP)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return path, fd


def scratch_folder(output, suffix=TMP):
    """A new empty scratch folder beside ``output``: ``(path, fd holding its lock)``."""
    folder = os.path.dirname(os.path.abspath(output))
    path = tempfile.mkdtemp(dir=folder, prefix=_name(output), suffix=suffix)
    return path, _lock(path)


_STATUS = "/proc/self/status"


def umask():
    """The process umask, read without changing it. ``os.umask`` reads only by setting a new
    value: for a moment another thread's new file would get the wrong mode. Linux (4.7 on) gives
    the umask in ``/proc/self/status``; elsewhere a folder made with mode 0777 in a private
    temporary folder shows which bits it masks."""
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with tempfile.TemporaryDirectory() as folder:
        probe = os.path.join(folder, "probe")
        os.mkdir(probe, 0o777)
        return 0o777 & ~os.stat(probe).st_mode


def write_atomically(output, write, mode="wb", encoding=None):
    """Call ``write(f)`` on a scratch file beside ``output``, then rename it to ``output``: an
    error, a full disk or a kill leaves ``output`` as it was (or absent), never half written."""
    output = os.path.abspath(output)
    clean_stale(os.path.dirname(output))
    path, fd = scratch_file(output)
    try:
        with os.fdopen(os.dup(fd), mode, encoding=encoding) as f:  # the dup shares the lock
            write(f)
        os.chmod(path, 0o666 & ~umask())  # mkstemp's 0600 would make the output private
        os.replace(path, output)
    except OSError as err:  # a full disk, most likely: say which output and that it is intact
        remove(path)
        raise failed_write(err, output) from err
    except BaseException:
        remove(path)
        raise
    finally:
        os.close(fd)


def write_folder(outdir, fill):
    """Run ``fill(folder)`` on a scratch folder beside ``outdir``, then put it in ``outdir``'s
    place (an existing one is moved aside first and removed last: a kill in between leaves it
    for :func:`clean_stale` to put back). An error leaves ``outdir`` as it was. Returns what
    ``fill`` returned."""
    outdir = os.path.abspath(outdir)
    clean_stale(os.path.dirname(outdir))
    tmp, lock = scratch_folder(outdir)
    old = old_lock = None
    try:
        result = fill(tmp)
        os.chmod(tmp, 0o777 & ~umask())
        if os.path.exists(outdir):
            old, old_lock = scratch_folder(outdir, OLD)
            os.rename(outdir, os.path.join(old, "output"))
        os.rename(tmp, outdir)
    except BaseException:
        remove(tmp)
        if old and not os.path.exists(outdir):
            os.rename(os.path.join(old, "output"), outdir)
        raise
    finally:
        for fd in (lock, old_lock):
            if fd is not None:
                os.close(fd)
    if old:
        remove(old)
    return result


def failed_write(err, output):
    """``err`` (an OSError while writing ``output``) as one that names it and says it is intact."""
    return OSError(err.errno, f"{err.strerror or err}; nothing was replaced or left behind", str(output))


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def clean_stale(folder):
    """Remove the scratch entries in ``folder`` that no live process holds; put back an old
    output moved aside whose replacement never arrived. Returns the paths removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(".") or not name.endswith((TMP, OLD)):
            continue
        path = os.path.join(folder, name)
        try:
            if time.time() - os.lstat(path).st_mtime < _YOUNG_S:
                continue
        except OSError:
            continue
        fd = _lock(path)
        if fd is None:
            continue
        try:
            original = os.path.join(folder, name[1:-len(OLD)].rsplit(".", 1)[0])
            kept = os.path.join(path, "output")
            if name.endswith(OLD) and os.path.lexists(kept) and not os.path.lexists(original):
                os.rename(kept, original)
            remove(path)
            removed.append(path)
        finally:
            os.close(fd)
    return removed
