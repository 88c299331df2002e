"""Build fairseq translation models in-process, through fairseq's own parser and task."""
from pathlib import Path

import torch
from fairseq import options, tasks
from fairseq.data import Dictionary
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from fairseq_helpers import PLUGIN

RESETS = ["--reset-optimizer", "--reset-dataloader", "--reset-meters", "--reset-lr-scheduler"]

TINY = dict(encoder_layers=2, decoder_layers=2, encoder_embed_dim=32, decoder_embed_dim=32,
            encoder_ffn_embed_dim=64, decoder_ffn_embed_dim=64, encoder_attention_heads=4,
            decoder_attention_heads=4)


def write_dicts(data_dir, size=40):
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for lang in ("src", "tgt"):
        d = Dictionary()
        for i in range(size):
            d.add_symbol(f"{lang}{i}")
        d.save(str(data_dir / f"dict.{lang}.txt"))
    return data_dir


def build(data_dir, arch, extra=(), **shape):
    """(task, model, cfg) for ``arch`` as fairseq-train would build them."""
    shape = {**TINY, **shape}
    argv = [str(data_dir), "--user-dir", PLUGIN, "--arch", arch, "--task", "translation",
            "--source-lang", "src", "--target-lang", "tgt", "--dropout", "0", "--attention-dropout", "0"]
    for key, value in shape.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    argv += list(extra)
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, argv)
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return task, model.eval(), cfg


def random_batch(task, bsz, src_len, tgt_len, seed=0, pad_first_row=0):
    """Source (left-padded, as fairseq's translation task pads it) and target prefixes."""
    g = torch.Generator().manual_seed(seed)
    sd, td = task.source_dictionary, task.target_dictionary
    src = torch.randint(sd.nspecial, len(sd), (bsz, src_len), generator=g)
    src[:, -1] = sd.eos()
    lengths = torch.full((bsz,), src_len)
    if pad_first_row:
        src[0, :pad_first_row] = sd.pad()
        lengths[0] -= pad_first_row
    prev = torch.randint(td.nspecial, len(td), (bsz, tgt_len), generator=g)
    prev[:, 0] = td.eos()
    return src, lengths, prev


def load_like_fairseq_train(argv):
    """What fairseq-train does up to its first update: parse, build, load the checkpoint."""
    from fairseq import checkpoint_utils
    from fairseq.trainer import Trainer

    args = options.parse_args_and_arch(options.get_training_parser(), [str(a) for a in argv])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    checkpoint_utils.load_checkpoint(cfg.checkpoint, trainer)
    return trainer


def start_argv(data, save_dir, arch, start, form, *extra):
    """fairseq-train's arguments to start ``arch`` from the checkpoint ``start``, by
    ``--finetune-from-model`` (form ``finetune``) or ``--restore-file`` with every reset."""
    argv = [data, "--user-dir", PLUGIN, "--arch", arch, "--save-dir", save_dir, "--max-update", 1,
            "--optimizer", "adam", "--lr", "0.001", "--max-tokens", "2000", "--num-workers", "0",
            "--criterion", "label_smoothed_cross_entropy", *extra]
    if form == "finetune":
        return argv + ["--finetune-from-model", start]
    return argv + ["--restore-file", start, *RESETS]
