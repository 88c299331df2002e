"""Which checkpoint a fairseq-train run starts from: one policy for every architecture and task.

fairseq-train (``checkpoint_utils.load_checkpoint``) loads ``checkpoint_last.pt`` from
--save-dir when --restore-file is left at its default and that file exists (a resume, which
ignores --finetune-from-model); on a first launch it loads --continue-once or
--finetune-from-model; a non-default --restore-file is loaded as it is. A --restore-file that
names no file (a typo, a folder) fairseq takes as "no checkpoint found" and trains from scratch
with exit status 0; here that is an error. The relative architectures read their shape from the
file this names (``models.shape_inheritance``); :func:`check_on_load` holds every other
architecture (stock, IndicTrans2's names, LoRA on either) to the same rule when fairseq loads.
"""
import functools
import os

DEFAULT_RESTORE_FILE = "checkpoint_last.pt"


def starting_checkpoint(cfg, suffix=None):
    """``(path, option)`` of the checkpoint fairseq-train loads for ``cfg`` (the parsed
    options, or fairseq's ``cfg.checkpoint``), ``option`` saying which one named it ("resume"
    for --save-dir's checkpoint_last.pt); None when it trains from scratch. A named file that
    is missing or a folder is refused, naming the option. ``suffix`` is the trainer's
    checkpoint suffix (default: --checkpoint-suffix)."""
    from fairseq.file_io import PathManager

    if suffix is None:
        suffix = getattr(cfg, "checkpoint_suffix", "") or ""
    restore = getattr(cfg, "restore_file", DEFAULT_RESTORE_FILE)
    if restore == DEFAULT_RESTORE_FILE:
        last = os.path.join(getattr(cfg, "save_dir", "checkpoints"), f"checkpoint_last{suffix}.pt")
        if PathManager.exists(last):
            return last, "resume"
        for option in ("continue_once", "finetune_from_model"):
            if getattr(cfg, option, None):
                return _required(getattr(cfg, option), option)
        return None
    return _required(restore.replace(".pt", suffix + ".pt") if suffix else restore, "restore_file")


def _required(path, option):
    flag = "--" + option.replace("_", "-")
    if "://" in str(path):  # an iopath handler's file: fairseq's to read
        return path, flag
    if os.path.isdir(path):
        raise FileNotFoundError(f"{flag} {path} is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        scratch = " (fairseq would train from scratch without a word)" if option == "restore_file" else ""
        raise FileNotFoundError(f"{flag} {path}: no such checkpoint file{scratch}")
    return path, flag


def check_on_load(load_checkpoint):
    """Wrap fairseq's ``checkpoint_utils.load_checkpoint`` (fairseq-train's start or resume,
    after the model is built, before anything is trained) so that every architecture follows
    :func:`starting_checkpoint`."""
    if getattr(load_checkpoint, "_checks_start", False):
        return load_checkpoint

    @functools.wraps(load_checkpoint)
    def load(cfg, trainer, **passthrough_args):
        starting_checkpoint(cfg, getattr(trainer, "checkpoint_suffix", None))
        return load_checkpoint(cfg, trainer, **passthrough_args)

    load._checks_start = True
    return load
