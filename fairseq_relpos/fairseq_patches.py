"""The plugin's changes to fairseq's own functions, made at run time when fairseq imports the
plugin (``--user-dir``): :func:`install` lists every one with its reason. Each exists because
stock fairseq main, on today's torch, refuses what is safe, loses data or fails unclearly;
installing twice changes nothing.

Four of the wrappers it installs are written beside what they know: the weights-only reading of
checkpoints (``checkpoints.allow_fairseq_checkpoints`` and ``checkpoints.name_refused_file``),
the reading of the authors' fork's checkpoints (``fork.translate_on_load``) and the checkpoint
fairseq-train starts from (``starting_checkpoint.check_on_load``). Changes made only to
the fairseq modules inside the plugin's own models are not here, as they change nothing global:
the relative architectures take over fairseq's self-attention modules
(``modules/relative_attention.py``) and encoder layers (``modules/unfused_layer.py``, which turns
off fairseq 0.12.2's fused fast path), and LoRA sends the attention it adapts through its
projection modules (``lora/loralib_layers.route_attention_through_modules``).
"""
import difflib
import functools
import inspect
import os

import numpy as np
from fairseq import checkpoint_utils, models
from fairseq.data import data_utils, indexed_dataset
from fairseq.file_io import PathManager
from fairseq.tasks import FairseqTask

from . import checkpoints, fork, scratch, starting_checkpoint


class NoInputError(ValueError):
    """A split with nothing to translate or score: an error, never an empty result."""


def refuse_empty_split(load_indexed_dataset):
    """Wrap ``data_utils.load_indexed_dataset`` so that a split binarised from empty files (an
    empty ``.bin``) is refused by name instead of failing in numpy with "cannot mmap an empty file"."""
    if getattr(load_indexed_dataset, "_refuses_empty_split", False):
        return load_indexed_dataset

    @functools.wraps(load_indexed_dataset)
    def load(path, *args, **kwargs):
        data = indexed_dataset.data_file_path(path)
        if os.path.isfile(data) and os.path.getsize(data) == 0:
            raise NoInputError(f"{data} is empty: this split has no sentences to load")
        return load_indexed_dataset(path, *args, **kwargs)

    load._refuses_empty_split = True
    return load


def keep_last_batch(batch_by_size):
    """Wrap ``data_utils.batch_by_size`` so that the inputs after the last full batch form a
    last, smaller batch, as in fairseq 0.12.2, instead of being dropped.

    fairseq's batcher splits the ordered indices into consecutive batches (each within
    --max-tokens/--batch-size), then main drops the last one when its size is not a multiple of
    --required-batch-size-multiple. The inputs missing after the returned batches are exactly that
    batch, so it is put back as it was made. Training keeps it too, for three reasons: 0.12.2
    trained on it; inputs are sorted by length before batching, so the dropped batch holds the
    longest pairs and main never trains on the longest documents of a fine-tuning set; and
    ``batch_by_size`` does not know which split it batches, so one rule for every split keeps
    this adaptation one small wrapper for any task.
    """
    if getattr(batch_by_size, "_keeps_last_batch", False):
        return batch_by_size

    signature = inspect.signature(batch_by_size)

    @functools.wraps(batch_by_size)
    def batches(indices, *args, **kwargs):
        if not isinstance(indices, np.ndarray):
            indices = np.fromiter(indices, dtype=np.int64, count=-1)
        if len(indices) == 0:
            return []  # main raises IndexError here when the multiple is above 1
        made = batch_by_size(indices, *args, **kwargs)
        if signature.bind(indices, *args, **kwargs).arguments.get("fixed_shapes") is not None:
            return made  # batches of given shapes: nothing is dropped after them
        covered = sum(len(batch) for batch in made)
        if covered < len(indices) and np.array_equal(np.concatenate([indices[:0], *made]), indices[:covered]):
            made = [*made, indices[covered:]]
        return made

    batches._keeps_last_batch = True
    return batches


def refuse_nothing_to_batch(get_batch_iterator):
    """Wrap ``FairseqTask.get_batch_iterator`` so that a loaded split (train, valid, test, ...)
    with no input left to batch, every one skipped as too long, is a NoInputError naming the
    split instead of an empty iterator (fairseq-generate printed nothing and ended in
    ZeroDivisionError). Datasets built on the fly (fairseq-interactive, the hub interface) are not
    splits: skipping their too-long lines when asked stays what it was."""
    if getattr(get_batch_iterator, "_refuses_nothing_to_batch", False):
        return get_batch_iterator

    @functools.wraps(get_batch_iterator)
    def batch_iterator(self, dataset, *args, **kwargs):
        itr = get_batch_iterator(self, dataset, *args, **kwargs)
        split = next((name for name, d in getattr(self, "datasets", {}).items() if d is dataset), None)
        if split is not None and len(itr) == 0:
            raise NoInputError(
                f"split '{split}' has no input left to batch: all {len(dataset)} inputs are longer "
                f"than max positions and were skipped (see the warning above)")
        return itr

    batch_iterator._refuses_nothing_to_batch = True
    return batch_iterator


def copy_atomically(copy):
    """Wrap fairseq's ``PathManager.copy`` so that a local copy is written to a scratch file
    beside the destination and renamed over it. fairseq saves each checkpoint once (atomically)
    and then copies it to ``checkpoint_best.pt`` and ``checkpoint_last.pt`` with this copy, in
    place: a kill during it left a torn ``checkpoint_last.pt`` that no run could resume from.
    With the rename, the destination is the old file or the new one, whole, with the mode of any
    new file (as ``checkpoint_N.pt``), not the scratch file's private one. Remote paths
    (an iopath handler, ``scheme://``) are left to fairseq as they are."""
    if getattr(copy, "_copies_atomically", False):
        return copy

    @functools.wraps(copy)
    def atomic_copy(src_path, dst_path, overwrite=False):
        if "://" in str(dst_path) or (os.path.exists(dst_path) and not overwrite):
            return copy(src_path, dst_path, overwrite)
        scratch.clean_stale(os.path.dirname(os.path.abspath(dst_path)))
        tmp, lock = scratch.scratch_file(dst_path)
        try:
            copy(src_path, tmp, True)
            os.chmod(tmp, 0o666 & ~scratch.umask())  # fairseq's own checkpoint_N.pt's mode, not mkstemp's 0600
            os.replace(tmp, dst_path)
        except BaseException:
            scratch.remove(tmp)
            raise
        finally:
            os.close(lock)
        return True

    atomic_copy._copies_atomically = True
    return atomic_copy


class UnknownArchitectureError(ValueError):
    """A checkpoint of an architecture that neither fairseq nor the --user-dir plugin registered."""


def refuse_unknown_architecture(function):
    """Wrap a fairseq function whose first argument is a checkpoint's model options so that an
    architecture nobody registered is an UnknownArchitectureError that names it, what this plugin
    registers and the registered names closest to it. fairseq ends in a traceback instead:
    ``models.build_model`` (options in ``cfg``) in an IndexError from a format string of its own
    message, and the conversion of an old checkpoint's ``args`` on load (fairseq < 0.10) in a
    KeyError."""
    if getattr(function, "_refuses_unknown_architecture", False):
        return function

    @functools.wraps(function)
    def checked(options, *args, **kwargs):
        arch = getattr(options, "_name", None) or getattr(options, "arch", None)
        if isinstance(arch, str) and arch not in models.ARCH_MODEL_REGISTRY:
            ours = sorted(name for name, set_defaults in models.ARCH_CONFIG_REGISTRY.items()
                          if set_defaults.__module__.startswith(f"{__package__}."))
            near = difflib.get_close_matches(arch, models.ARCH_MODEL_REGISTRY, n=3)
            raise UnknownArchitectureError(
                f"the checkpoint's architecture {arch!r} is not registered, so fairseq cannot build its model: "
                f"fairseq registers its own and the one --user-dir plugin it loads registers more (this one: "
                f"{', '.join(ours)}); a checkpoint of another plugin's architecture needs that plugin's "
                f"--user-dir" + (f" (registered names closest to it: {', '.join(near)})" if near else ""))
        return function(options, *args, **kwargs)

    checked._refuses_unknown_architecture = True
    return checked


def install():
    # torch >= 2.6 unpickles with weights_only=True and fairseq does not say otherwise, so it
    # refuses every fairseq checkpoint (argparse.Namespace; numpy metrics of --eval-bleu runs):
    # allow exactly those plain-data globals, keeping the protection on for everything else.
    checkpoints.allow_fairseq_checkpoints()
    # fairseq's refusal does not say which file it would not load: name it.
    checkpoint_utils.load_checkpoint_to_cpu = checkpoints.name_refused_file(
        checkpoint_utils.load_checkpoint_to_cpu)
    # Checkpoints of the authors' fork name options and weights stock fairseq ignores or lacks
    # (rope_args, fused q/k/v, ...): every command reads them as this plugin's (fork.translate).
    checkpoint_utils.load_checkpoint_to_cpu = fork.translate_on_load(checkpoint_utils.load_checkpoint_to_cpu)
    # fairseq-train takes a --restore-file that names no file (a typo, a folder) as "no checkpoint"
    # and trains from scratch: refuse it for every architecture (starting_checkpoint).
    checkpoint_utils.load_checkpoint = starting_checkpoint.check_on_load(checkpoint_utils.load_checkpoint)
    # fairseq main (since its data2vec 2.0 commit; 0.12.2 did not) drops the last batch of every
    # split when its size is not a multiple of --required-batch-size-multiple (default 8):
    # generate loses up to 7 inputs (all of a set smaller than 8), validate scores fewer sentences.
    # With every input batched, what is left to lose is a whole split: an empty one, or one whose
    # every input is skipped as too long. Both end in one clear NoInputError, not in numpy's
    # "cannot mmap an empty file" or a ZeroDivisionError after fairseq-generate printed nothing.
    data_utils.batch_by_size = keep_last_batch(data_utils.batch_by_size)
    data_utils.load_indexed_dataset = refuse_empty_split(data_utils.load_indexed_dataset)
    FairseqTask.get_batch_iterator = refuse_nothing_to_batch(FairseqTask.get_batch_iterator)
    # fairseq copies each saved checkpoint to checkpoint_last.pt (and _best) in place: a kill
    # mid-copy tore the one file a run resumes from. Copy, then rename.
    PathManager.copy = staticmethod(copy_atomically(PathManager.copy))
    # A checkpoint of an architecture nobody registered ended in fairseq's IndexError (a cfg) or
    # KeyError (an old checkpoint's args): name the architecture and what registers which.
    models.build_model = refuse_unknown_architecture(models.build_model)
    checkpoint_utils.convert_namespace_to_omegaconf = refuse_unknown_architecture(
        checkpoint_utils.convert_namespace_to_omegaconf)
