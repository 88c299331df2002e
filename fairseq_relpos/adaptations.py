"""Every change the plugin makes to fairseq at run time, in one place, installed when fairseq
imports the plugin (``--user-dir``). Each exists because stock fairseq main, on today's torch,
refuses what is safe or loses data; installing twice changes nothing.
"""
from fairseq import checkpoint_utils

from . import checkpoint_io


def install():
    # torch >= 2.6 unpickles with weights_only=True and fairseq does not say otherwise, so it
    # refuses every fairseq checkpoint (argparse.Namespace; numpy metrics of --eval-bleu runs):
    # allow exactly those plain-data globals, keeping the protection on for everything else.
    checkpoint_io.allow_fairseq_checkpoints()
    # fairseq's refusal does not say which file it would not load: name it.
    checkpoint_utils.load_checkpoint_to_cpu = checkpoint_io.name_refused_file(
        checkpoint_utils.load_checkpoint_to_cpu)
