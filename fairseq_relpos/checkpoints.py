"""Safe reading of fairseq checkpoints under torch's weights_only unpickler.

torch >= 2.6 unpickles with ``weights_only=True`` by default, and fairseq's own loader does not
say otherwise, so every fairseq checkpoint fails on its ``argparse.Namespace``. We allow exactly
what fairseq checkpoints hold besides tensors and containers, never turn the protection off, and
make the refusal of anything else name the file and what was refused.
"""
import argparse
import functools
import os
import pickle
import re

import numpy
import torch

from . import checkpoint_checks, fork, scratch

try:  # numpy 2.x; numpy 1.x has only numpy.core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

# torch.load's default since torch 2.6 (and what allows (object, name) pairs)
TORCH_LOADS_WEIGHTS_ONLY = tuple(int(n) for n in re.findall(r"\d+", torch.__version__)[:2]) >= (2, 6)
PLAIN_NUMPY_KINDS = checkpoint_checks.PLAIN_KINDS
NOT_PLAIN_NUMPY = "(not numbers or bools)"


def _plain_numpy_dtype(*args):
    """``numpy.dtype`` as the unpickler may call it: numeric and bool dtypes only, so no array
    or scalar of objects, strings or records comes out of a checkpoint."""
    dtype = numpy.dtype(*args)
    if dtype.kind not in PLAIN_NUMPY_KINDS:
        raise pickle.UnpicklingError(f"numpy.dtype({args[0]!r}) {NOT_PLAIN_NUMPY}")
    return dtype


def _numpy_globals():
    """fairseq keeps numpy arrays and scalars in ``extra_state["metrics"]`` (the BLEU counters of
    ``--eval-bleu``, fairseq issue #5603). Their pickles name the array and scalar constructors
    under ``numpy.core`` (numpy 1.x) or ``numpy._core`` (numpy 2.x); the dtype classes are what
    the unpickler checks before it restores a dtype's state."""
    allowed = [(numpy.ndarray, "numpy.ndarray"), (_plain_numpy_dtype, "numpy.dtype")]
    for core in ("numpy.core", "numpy._core"):
        allowed += [(_multiarray._reconstruct, f"{core}.multiarray._reconstruct"),
                    (_multiarray.scalar, f"{core}.multiarray.scalar")]
    codes = "?" + numpy.typecodes["AllInteger"] + numpy.typecodes["AllFloat"]
    return allowed + sorted({type(numpy.dtype(code)) for code in codes}, key=str)


# Everything a fairseq translation checkpoint's pickle references besides torch's own
# tensors, storages and containers, which torch already allows.
FAIRSEQ_CHECKPOINT_GLOBALS = [argparse.Namespace, *_numpy_globals()]


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """A user error too (ValueError): the file is not one we will open."""


def _by_own_name(entry):
    """torch < 2.6 takes no (object, name) pairs: it allows a global by the object's own
    ``__module__`` and ``__name__``. Give it the object itself where those spell the name, else a
    function of that name that forwards to it (numpy's constructors under the other numpy's
    module, the checked ``numpy.dtype``)."""
    if not isinstance(entry, tuple):
        return entry
    obj, name = entry
    module, _, attr = name.rpartition(".")
    if (getattr(obj, "__module__", None), getattr(obj, "__name__", None)) == (module, attr):
        return obj

    def forward(*args):
        return obj(*args)

    forward.__module__, forward.__name__, forward.__qualname__ = module, attr, attr
    return forward


def allow_fairseq_checkpoints():
    allowed = FAIRSEQ_CHECKPOINT_GLOBALS
    if not TORCH_LOADS_WEIGHTS_ONLY:
        allowed = [_by_own_name(entry) for entry in allowed]
    torch.serialization.add_safe_globals(allowed)


def _explain(path, err):
    """A weights-only refusal becomes UnsafeCheckpointError naming the file and what was
    refused; any other unpickling failure (e.g. "Unsupported operand" on a text file) means
    the file is not a checkpoint at all."""
    said = str(err).strip()
    refused = re.search(r"(?:Unsupported global:|unsupported) GLOBAL (\S+)", said)  # not allowed, or blocked
    if refused or NOT_PLAIN_NUMPY in said:
        what = f"the global {refused.group(1)}" if refused else re.search(
            rf"numpy\.dtype\(.*?\) {re.escape(NOT_PLAIN_NUMPY)}", said).group(0)
        return UnsafeCheckpointError(
            f"refused to load {path}: its pickle references {what}, which weights_only loading does "
            f"not allow (the plugin adds argparse.Namespace and numpy arrays and scalars of numbers or "
            f"bools to torch's tensors and containers)")
    detail = next((line.strip() for line in said.splitlines() if "Unsupported" in line), said.splitlines()[0])
    return ValueError(f"{path} is not a fairseq checkpoint (torch could not read it: {detail})")


class TornCheckpointError(ValueError):
    """A checkpoint cut short by a killed or failed save."""


def check_before_load(path):
    """Refuse, before torch reads it, a torn file (naming the whole checkpoint beside it to use
    instead) and a numpy dtype given a state that is not a plain number's (see checkpoint_checks)."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return
    why = checkpoint_checks.torn(path)
    if why:
        intact = checkpoint_checks.intact_neighbour(path)
        advice = (f"the newest whole checkpoint beside it is {intact}: use it instead (to resume training: "
                  f"--restore-file {intact})") if intact else "no whole checkpoint lies beside it"
        raise TornCheckpointError(f"cannot load {path}: {why}; {advice}")
    state = checkpoint_checks.unplain_numpy_state(path)
    if state:
        raise UnsafeCheckpointError(
            f"refused to load {path}: its pickle gives {state}; the plugin allows numpy dtypes of plain "
            f"numbers or bools only (no fields, no object flags, native item size)")


def safe_torch_load(path, **kwargs):
    """torch.load with weights_only=True (fairseq's plain-data globals allowed, whether or not
    fairseq loaded the plugin) and an error that names the file."""
    allow_fairseq_checkpoints()
    check_before_load(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
    except pickle.UnpicklingError as err:
        raise _explain(path, err) from err


def name_refused_file(loader):
    """Wrap fairseq's ``load_checkpoint_to_cpu`` so that a refused pickle or a torn file names its file
    (checked first: see ``check_before_load``), and a pickle that torch >= 2.6 would refuse is
    refused on older torch too."""
    if getattr(loader, "_names_refused_file", False):
        return loader

    @functools.wraps(loader)
    def load(path, *args, **kwargs):
        if not TORCH_LOADS_WEIGHTS_ONLY and os.path.isfile(path):
            # torch < 2.6 unpickles anything by default: read the file weights-only first (which
            # runs check_before_load), so that what torch >= 2.6 refuses is refused here too.
            _read_weights_only(path)
        else:
            check_before_load(path)
        try:
            return loader(path, *args, **kwargs)
        except pickle.UnpicklingError as err:
            if isinstance(err, UnsafeCheckpointError):
                raise
            raise _explain(path, err) from err

    load._names_refused_file = True
    return load


def _read_weights_only(path):
    try:
        return safe_torch_load(path, mmap=True)
    except RuntimeError:  # mmap needs the zip format; older checkpoints are read whole
        return safe_torch_load(path)


def read_checkpoint(path):
    """A fairseq checkpoint's state, read safely; anything else is a clear ValueError."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        state = _read_weights_only(path)
    except (ValueError, OSError):  # explained already (or the disk's own error)
        raise
    except EOFError as err:
        raise ValueError(f"{path} is not a fairseq checkpoint (it is empty or truncated)") from err
    except Exception as err:  # torch's legacy reader fails on foreign bytes in many ways
        said = (str(err).splitlines() or [""])[0][:200]
        raise ValueError(f"{path} is not a fairseq checkpoint (torch could not read it: "
                         f"{type(err).__name__}: {said})") from err
    if not isinstance(state, dict) or "model" not in state or not (state.get("cfg") or state.get("args")):
        raise ValueError(f"{path} is not a fairseq checkpoint: it has no 'model' weights and 'cfg'/'args'")
    return fork.translate(state, path)  # a checkpoint of the authors' fork reads as this plugin's


def model_args(state):
    """The live mapping of a checkpoint's model options (``cfg.model``, or ``args`` in old
    checkpoints): editing it edits the checkpoint."""
    cfg = state.get("cfg")
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if model is None:
        model = state.get("args")
    if isinstance(model, argparse.Namespace):
        return vars(model)
    if model is None:
        return {}
    return model


def read_model_args(path):
    """The model options a fairseq checkpoint was built with, as a plain dict."""
    return dict(model_args(read_checkpoint(path)))


def write_checkpoint(state, path):
    """Save atomically (a scratch file beside ``path``, then a rename), so a crash, a kill or a
    full disk never leaves a half-written checkpoint under the final name; scratch files left
    by killed runs are removed first (see ``scratch``)."""
    scratch.write_atomically(path, lambda f: torch.save(state, f))
