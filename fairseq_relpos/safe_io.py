"""The text files fairseq-relpos commands read and the outputs they write, checked up front.

Python's decoder names neither the file nor the line of a byte that is not UTF-8, and an output
that cannot be written (a directory in its place, a folder that is missing, a file where a
folder should be, no permission) would otherwise fail after the work was done, with a traceback
or half the outputs written. Every command checks its outputs with :func:`check_output` before
it reads anything, and reads text with :func:`text_lines`.
"""
import os


def text_lines(path):
    """The lines of a UTF-8 text file as text mode reads them (newlines kept), without the byte
    order mark some editors put first; a byte that is not UTF-8 is a ValueError naming the file
    and the line."""
    with open(path, encoding="utf-8-sig") as f:
        try:
            yield from f
        except UnicodeDecodeError as err:
            raise ValueError(_not_utf8(path, err)) from None


def _not_utf8(path, err):
    """Find the line of a decoding error by decoding line by line (a newline byte never occurs
    inside a UTF-8 character, so lines decode independently)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return (f"{path} line {number} is not UTF-8 text (byte {bad.object[bad.start]:#04x} at "
                        f"byte {bad.start + 1} of the line)")
    return f"{path} is not UTF-8 text ({err.reason})"


def check_output(path, force=True, inputs=()):
    """Refuse to write ``path`` if it is a directory, one of ``inputs``, an existing file without
    ``force``, or in a folder that does not exist or cannot be written."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; give the name of a file to write")
    for source in inputs:
        if source is not None and os.path.exists(path) and os.path.exists(source) and os.path.samefile(source, path):
            raise ValueError(f"refusing to overwrite the input {source}; write to another file")
    if os.path.lexists(path) and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it")
    check_folder(os.path.dirname(os.path.abspath(path)), create=False)


def check_folder(folder, create=True):
    """Refuse an output folder that is not a directory or cannot be written; with ``create``, a
    missing folder is fine if the nearest existing folder above it can be written."""
    folder = os.path.abspath(folder)
    existing = folder
    while create and not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.exists(existing):
        raise FileNotFoundError(f"the output folder {folder} does not exist")
    if not os.path.isdir(existing):
        raise ValueError(f"cannot write in {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write in {folder}: {existing} is not writable")


def contains(folder, path):
    """Whether ``path`` is ``folder`` or lies inside it (links resolved)."""
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return os.path.commonpath([folder, path]) == folder


def check_output_folder(folder, inputs=(), force=False, replaceable=None):
    """Refuse an output folder whose writing could destroy what the user gave: one that is,
    holds or lies inside one of ``inputs`` (files or folders), that is or holds the working
    folder, or a file or link in its place. An existing folder needs ``force``, and even then is
    replaced only if ``replaceable(folder)`` returns None (else the reason it is not an output
    of this command), so ``--force`` never deletes an arbitrary folder."""
    if os.path.islink(folder):
        raise ValueError(f"refusing to replace {folder}: it is a symbolic link; give another folder")
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise ValueError(f"refusing to replace {folder}: it is a file, not a folder this command wrote; "
                         "give another folder")
    given = [(f"the input {p}", p) for p in inputs if p is not None and os.path.exists(p)]
    for what, path in given + [("the working folder", os.getcwd())]:
        if contains(folder, path) or (contains(path, folder) and what != "the working folder"):
            how = "is" if contains(path, folder) and contains(folder, path) else \
                "holds" if contains(folder, path) else "lies inside"
            raise ValueError(f"refusing to write {folder}: it {how} {what}; give another folder")
    if os.path.exists(folder):
        if not force:
            raise FileExistsError(f"{folder} exists; pass --force to replace it")
        reason = replaceable(folder) if replaceable else "this command replaces no folder"
        if reason:
            raise ValueError(f"refusing to replace {folder}, even with --force: {reason}; "
                             "remove it yourself or give another folder")
    check_folder(os.path.dirname(os.path.abspath(folder)), create=False)
