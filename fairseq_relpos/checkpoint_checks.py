"""Checks of a checkpoint file made before torch unpickles it: whole, and numpy states plain.

Torn file: fairseq copies ``checkpoint_N_M.pt`` to ``checkpoint_last.pt`` in place, so a kill
during that copy (or any save without the plugin) leaves a zip without its central directory,
which torch reports as "PytorchStreamReader failed reading zip archive" without naming the
file. :func:`torn` says so, and :func:`intact_neighbour` finds the checkpoint to resume from.

numpy state: the weights_only unpickler lets an allowed class restore its own state, and for a
numpy dtype that is ``dtype.__setstate__``, which takes any fields, offsets, item size and
flags: a float64 dtype can be given a field at an offset outside its buffer (reading it reads
other memory) or object flags (its bytes become object pointers). Nothing of ours runs between
that call and the array's, so :func:`unplain_numpy_state` reads the pickle first without
building anything (every global is an inert recorder) and names any dtype whose state is not
the one numpy writes for a plain number or bool: no subarray, fields or names, native item
size and alignment, no flags.
"""
import io
import os
import pickle
import zipfile

import numpy

ZIP_MAGIC = b"PK\x03\x04"
_ENDIANS = ("<", ">", "|", "=")
PLAIN_KINDS = "biufc"  # bool, signed and unsigned int, float, complex
# What a legacy (pre-zip) torch file holds before its storages: magic number, protocol
# version, system info, then the object itself.
_LEGACY_PICKLES = 4


def _is_dtype(name):
    return name == "numpy.dtype" or name.startswith("numpy.dtypes.")


def unplain_dtype_state(state):
    """None if ``state`` is what numpy pickles for a number or bool dtype, else what is not."""
    if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3):
        return "a state numpy never writes for a number (not version 3 with 8 items)"
    _, endian, subarray, names, fields, elsize, alignment, flags = state
    problems = [what for what, bad in (
        (f"byte order {endian!r}", endian not in _ENDIANS), ("a subarray", subarray is not None),
        ("fields", names is not None or fields is not None),
        (f"item size {elsize!r} and alignment {alignment!r} instead of the native ones", (elsize, alignment) != (-1, -1)),
        (f"flags {flags!r} (object flags)", flags != 0)) if bad]
    if not problems and not all(type(v) in (int, str, type(None)) for v in state):
        problems.append("values of other types")
    return ", ".join(problems) or None


class UnplainState(Exception):
    pass


class _Recorded:
    """What any global, call or object of the pickle becomes: inert, accepts every operation
    the unpickler applies, and checks the state given to a numpy dtype."""
    name = "?"

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.args = args
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _global(f"{self.name}(...)")(*args)

    def __repr__(self):
        return f"{self.name}({', '.join(map(repr, self.args))})"

    def __setstate__(self, state):
        problem = None
        if _is_dtype(self.name) and not self._refused_when_built():
            problem = unplain_dtype_state(state)
        if problem:
            raise UnplainState(f"{self!r} the state of a dtype with {problem}")

    def _refused_when_built(self):
        """Whether torch's unpickler refuses this dtype as it builds it, before its state (a
        kind other than number or bool, through the allow-list's check): its message says so."""
        if self.name != "numpy.dtype" or not self.args or not isinstance(self.args[0], str):
            return False
        try:
            return numpy.dtype(self.args[0]).kind not in PLAIN_KINDS
        except (TypeError, ValueError):
            return True

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass

    def add(self, value):
        pass


_GLOBALS = {}


def _global(name):
    if name not in _GLOBALS:
        _GLOBALS[name] = type("Recorded", (_Recorded,), {"name": name})
    return _GLOBALS[name]


class _Scanner(pickle.Unpickler):
    def find_class(self, module, name):
        return _global(f"{module}.{name}")

    def persistent_load(self, pid):
        return None


def _scan(stream):
    _Scanner(stream).load()


def torn(path):
    """Why ``path`` is not a whole torch zip archive (None if it is, or is not a zip at all)."""
    with open(path, "rb") as f:
        if f.read(4) != ZIP_MAGIC:
            return None
    try:
        with zipfile.ZipFile(path):
            return None
    except zipfile.BadZipFile as err:
        return f"it is truncated or damaged ({err}), as a save killed or failed midway leaves it"


def unplain_numpy_state(path):
    """A description of the first numpy dtype in ``path``'s pickle whose state is not a plain
    number's or bool's; None when there is none. A file that is no pickle is left to torch."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if member.endswith("data.pkl"):
                        _scan(io.BytesIO(archive.read(member)))
        else:
            with open(path, "rb") as f:
                for _ in range(_LEGACY_PICKLES):
                    _scan(f)
    except UnplainState as err:
        return str(err)
    except Exception:  # not a pickle torch could read either: torch's own error says so
        return None
    return None


def intact_neighbour(path):
    """The newest other ``checkpoint*.pt`` beside ``path`` that is a whole zip archive."""
    folder = os.path.dirname(os.path.abspath(path))
    candidates = []
    for name in os.listdir(folder):
        full = os.path.join(folder, name)
        if name.startswith("checkpoint") and name.endswith(".pt") and os.path.isfile(full) \
                and not os.path.samefile(full, path):
            candidates.append((os.path.getmtime(full), full))
    for _, full in sorted(candidates, reverse=True):
        if zipfile.is_zipfile(full):
            return full
    return None
