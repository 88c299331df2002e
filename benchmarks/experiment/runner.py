"""Running fairseq's command-line tools for the grid, one at a time, logged; the locks that let two
runners share a work directory; the cells' names (their cache directories)."""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fairseq_relpos.scratch import write_atomically

REPO = Path(__file__).resolve().parents[2]
PLUGIN = str(REPO / "fairseq_relpos")
RELPOS = "fairseq_relpos.cli.main"  # this checkout's fairseq-relpos, as python -m runs it from REPO


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(tool, args, logfile, threads, append=False):
    """Run a fairseq CLI, output to ``logfile`` (appended to with ``append``, for a resumed
    training); returns wall seconds. Raises on failure."""
    cmd = [sys.executable, "-m", f"fairseq_cli.{tool}", *map(str, args)]
    return _logged(cmd, f"fairseq-{tool}", logfile, threads, append)


def relpos(command, args, logfile, threads, append=False):
    """Run ``fairseq-relpos COMMAND`` like :func:`run`."""
    cmd = [sys.executable, "-m", RELPOS, command, *map(str, args)]
    return _logged(cmd, f"fairseq-relpos {command}", logfile, threads, append)


def relpos_json(command, args, threads):
    """What ``fairseq-relpos COMMAND`` prints as JSON (e.g. ``inspect --json``)."""
    proc = subprocess.run([sys.executable, "-m", RELPOS, command, *map(str, args)], capture_output=True,
                          text=True, env=_env(threads), cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"fairseq-relpos {command} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def _env(threads):
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                PYTHONWARNINGS="ignore")


def _logged(cmd, name, logfile, threads, append):
    start = time.time()
    with open(logfile, "a" if append else "w") as out:
        out.write(" ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(threads), cwd=REPO)
    if proc.returncode != 0:
        tail = Path(logfile).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name} failed ({proc.returncode}), log {logfile}:\n{tail}")
    return time.time() - start


class Lock:
    """An exclusive lock file holding our pid, so that two runners on one work directory (e.g.
    one per core once the machine is free) never work on the same cell; stale locks are taken over."""

    def __init__(self, work, name):
        (work / "locks").mkdir(exist_ok=True)
        self.path = work / "locks" / f"{name}.lock"

    def acquire(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text() or 0)
                    os.kill(pid, 0)
                    return False  # held by a live runner
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    self.path.unlink(missing_ok=True)  # stale
                    continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return True
        return False

    def release(self):
        self.path.unlink(missing_ok=True)


def wait_for(work, name, done, build):
    """``build()`` under the lock ``name`` unless ``done`` exists; another runner holding the
    lock is waited for. Returns the JSON in ``done``."""
    lock, held = Lock(work, name), False
    while not done.is_file():
        if lock.acquire():
            held = True
            break
        time.sleep(10)
    try:
        if not done.is_file():
            build()
        return json.loads(done.read_text())
    finally:
        if held:
            lock.release()


def plugin_fingerprint():
    """The plugin code a cell ran with: git HEAD and a hash of every plugin source file as it
    was on disk (the working tree may hold uncommitted changes)."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "fairseq_relpos").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True).stdout.strip() or None
    except OSError:
        head = None
    return {"git_head": head, "sources_sha256": digest.hexdigest()[:16]}


def write_atomic(path, text):
    write_atomically(path, lambda f: f.write(text), mode="w", encoding="utf-8")


def threads(args):
    if args.threads != "auto":
        return int(args.threads)
    return 2 if os.getloadavg()[0] < 2.5 else 1


def parse_cell(text):
    """``REGIME:POSITIONS[:VARIANT]`` -> a tuple of two or three names."""
    return tuple(text.split(":"))


def cell_name(cell):
    return "-".join(cell)


def cell_dir(work, seed, cell, base=None):
    """A cell's cache directory: its checkpoint, ``generate.txt`` and ``cell.json``. A further
    fine-tuning seed on another seed's base (``base``) sits beside that base's cells."""
    if base is None or base == seed:
        return work / f"seed{seed}" / cell_name(cell)
    return work / f"seed{base}" / f"{cell_name(cell)}-seed{seed}"


def dir_of(work, c):
    """The cache directory of a finished cell (its ``cell.json``)."""
    return cell_dir(work, c["seed"], key_of(c), c.get("base_seed"))


def key_of(c):
    return (c["regime"], c["positions"]) + ((c["variant"],) if c.get("variant") else ())


def seed_label(c):
    """A cell's seed, and its base's where that is another seed's."""
    return str(c["seed"]) + (f" (base {c['base_seed']})" if c.get("base_seed", c["seed"]) != c["seed"] else "")


def separated(c):
    """Whether a cell fine-tuned on documents with separators (a ``sep`` variant)."""
    return "sep" in (c.get("variant") or "").split("-")
