"""import-hf's and export-hf's output folders: checked as every command's are
(:func:`safe_io.check_output_folder`: never an input, a folder holding one, or the working
folder), written whole or not at all (:func:`scratch.write_folder`), and an existing one replaced
with ``--force`` only when it holds nothing but files of the layout the command writes."""
import fnmatch
import os

from .. import scratch
from ..safe_io import check_output_folder
from . import layout
from .importer import CHECKPOINT

SPM_MODELS = tuple(layout.spm_model(side) for side in layout.SIDES)
IMPORT_FILES = (CHECKPOINT, *(layout.dict_txt(side) for side in layout.SIDES), *SPM_MODELS)
EXPORT_FILES = (layout.CONFIG, layout.BIN, layout.BIN_INDEX, "pytorch_model-*.bin", layout.SAFETENSORS,
                layout.SAFETENSORS_INDEX, "model-*.safetensors", *(layout.dict_json(side) for side in layout.SIDES),
                *SPM_MODELS, *layout.SIDE_FILES, *(f"*{s}" for s in layout.CODE_SUFFIXES))


def _not_ours(patterns):
    def reason(folder):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path) or \
                    not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                return f"it holds {name}, which this command does not write"
        return None
    return reason


def check(outdir, force, inputs, own=IMPORT_FILES):
    outdir = os.path.abspath(outdir)
    check_output_folder(outdir, inputs=[p for p in inputs if p], force=force, replaceable=_not_ours(own))
    return outdir


def write(outdir, fill):
    """Run ``fill(scratch)`` on a new folder beside OUTDIR, then put it in OUTDIR's place."""
    return scratch.write_folder(outdir, fill)
