"""Safe reading of fairseq checkpoints under torch's weights_only unpickler.

torch >= 2.6 unpickles with ``weights_only=True`` by default, and fairseq's own loader does not
say otherwise, so every fairseq checkpoint fails on its ``argparse.Namespace``. We allow exactly
the classes fairseq checkpoints hold, never turn the protection off, and make the refusal of
any other global name the file.
"""
import argparse
import functools
import os
import pickle

import torch
from fairseq import checkpoint_utils

# Everything a fairseq translation checkpoint's pickle references besides torch's own
# tensors, storages and containers, which torch already allows.
FAIRSEQ_CHECKPOINT_GLOBALS = [argparse.Namespace]


class UnsafeCheckpointError(pickle.UnpicklingError):
    pass


def allow_fairseq_checkpoints():
    torch.serialization.add_safe_globals(FAIRSEQ_CHECKPOINT_GLOBALS)


def _explain(path, err):
    """A weights-only refusal becomes UnsafeCheckpointError naming the file and what was
    refused; any other unpickling failure means the file is not a checkpoint at all."""
    said = str(err).strip()
    if "Weights only load failed" in said or "Unsupported global" in said:
        details = [line.strip() for line in said.splitlines()
                   if "GLOBAL" in line or "Unsupported" in line]
        return UnsafeCheckpointError(
            f"refused to load {path}: its pickle holds what fairseq checkpoints never do, and "
            f"loading it could run code ({details[0] if details else said.splitlines()[0]})")
    return ValueError(f"{path} is not a fairseq checkpoint (torch could not read it: {said.splitlines()[0]})")


def safe_torch_load(path, **kwargs):
    """torch.load with weights_only=True and an error that names the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
    except pickle.UnpicklingError as err:
        raise _explain(path, err) from err


def name_refused_file(loader):
    """Wrap fairseq's ``load_checkpoint_to_cpu`` so that a refused pickle names its file."""
    if getattr(loader, "_names_refused_file", False):
        return loader

    @functools.wraps(loader)
    def load(path, *args, **kwargs):
        try:
            return loader(path, *args, **kwargs)
        except pickle.UnpicklingError as err:
            if isinstance(err, UnsafeCheckpointError):
                raise
            raise _explain(path, err) from err

    load._names_refused_file = True
    return load


def install():
    """The plugin's one run-time adaptation of fairseq: see the module docstring."""
    allow_fairseq_checkpoints()
    checkpoint_utils.load_checkpoint_to_cpu = name_refused_file(checkpoint_utils.load_checkpoint_to_cpu)


def read_checkpoint(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        state = safe_torch_load(path, mmap=True)
    except RuntimeError:
        state = safe_torch_load(path)
    except (EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a fairseq checkpoint (torch could not read it: {err})") from err
    if not isinstance(state, dict) or "model" not in state or not (state.get("cfg") or state.get("args")):
        raise ValueError(f"{path} is not a fairseq checkpoint: it has no 'model' weights and 'cfg'/'args'")
    return state


def read_model_args(path):
    """The model options a fairseq checkpoint was built with, as a plain dict."""
    state = read_checkpoint(path)
    cfg = state.get("cfg")
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if model is None:
        model = state.get("args")
    return dict(vars(model)) if isinstance(model, argparse.Namespace) else dict(model or {})
