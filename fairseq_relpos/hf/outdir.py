"""Write a whole output folder or nothing: built beside OUTDIR, renamed into place when complete.

An existing OUTDIR is replaced only with ``force``, and never when it is, holds or lies inside
one of the command's inputs (replacing it would delete what the user gave).
"""
import os
import shutil
import tempfile

from ..safe_io import check_folder


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check(outdir, force, inputs):
    outdir = os.path.abspath(outdir)
    for source in inputs:
        if source and (_inside(source, outdir) or _inside(outdir, source)):
            raise ValueError(f"refusing to write {outdir}: it is, holds or lies inside the input {source}")
    if os.path.lexists(outdir):
        if not os.path.isdir(outdir):
            raise ValueError(f"{outdir} exists and is not a folder")
        if not force:
            raise FileExistsError(f"{outdir} exists; pass --force to replace it")
    check_folder(os.path.dirname(outdir), create=False)
    return outdir


def write(outdir, fill):
    """Run ``fill(scratch)`` on a new folder beside OUTDIR, then put it in OUTDIR's place."""
    parent = os.path.dirname(outdir)
    scratch = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(outdir)}.", suffix=".tmp")
    try:
        result = fill(scratch)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(scratch, 0o777 & ~mask)
        old = None
        if os.path.exists(outdir):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(outdir)}.", suffix=".old")
            os.rename(outdir, os.path.join(old, "previous"))
        os.rename(scratch, outdir)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return result
