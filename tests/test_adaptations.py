"""The plugin's run-time adaptations of fairseq are installed once, however often it is imported."""
import importlib
import os
import stat

from fairseq import checkpoint_utils, models
from fairseq.data import data_utils
from fairseq.file_io import PathManager
from fairseq.tasks import FairseqTask

import fairseq_relpos
import fairseq_relpos.plugin
from fairseq_relpos import fairseq_patches as adaptations

PATCHED = [(checkpoint_utils, "load_checkpoint_to_cpu"), (data_utils, "batch_by_size"),
           (data_utils, "load_indexed_dataset"), (FairseqTask, "get_batch_iterator"), (PathManager, "copy"),
           (models, "build_model"), (checkpoint_utils, "convert_namespace_to_omegaconf")]
# wrappers each has: fairseq's checkpoint loader names refused files and reads the fork's checkpoints
LAYERS = {"load_checkpoint_to_cpu": 2}


def layers(function):
    depth = 0
    while hasattr(function, "__wrapped__"):
        function, depth = function.__wrapped__, depth + 1
    return depth


def test_installing_again_wraps_nothing_twice():
    before = [getattr(owner, name) for owner, name in PATCHED]
    adaptations.install()
    importlib.reload(fairseq_relpos)  # what a second --user-dir import does
    importlib.reload(fairseq_relpos.plugin)
    for (owner, name), first in zip(PATCHED, before):
        now = getattr(owner, name)
        assert now is first, name
        assert layers(now) == LAYERS.get(name, 1), name  # fairseq's own function, each wrapper once


def test_checkpoint_copies_get_the_mode_of_fairseqs_own_checkpoint(tmp_path):
    """fairseq saves checkpoint_N.pt as any new file (0666 less the umask) and copies it to
    checkpoint_last.pt and checkpoint_best.pt; the atomic copy goes through a scratch file
    (mkstemp: 0600), whose private mode the copies must not keep."""
    old = os.umask(0o027)
    try:
        own = str(tmp_path / "checkpoint1.pt")
        checkpoint_utils.torch_persistent_save({"model": {}}, own)
        for name in ("checkpoint_last.pt", "checkpoint_best.pt", "checkpoint_last.pt"):  # new, new, replaced
            assert PathManager.copy(own, str(tmp_path / name), overwrite=True)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"checkpoint1.pt": 0o640, "checkpoint_last.pt": 0o640, "checkpoint_best.pt": 0o640}
