"""Whole documents through ``fairseq-generate`` and ``fairseq-interactive`` at the model's cost.

``--task translation_doc`` and ``--task translation_lora`` build their generator with
:func:`generator_choice`: stock ``SequenceGenerator`` search over an ensemble that skips the
per-step copies that change nothing (see :mod:`.ensemble`). ``--score-reference`` and callers
that choose their own generator class keep fairseq's.
"""
from .ensemble import DocumentEnsemble, DocumentEnsembleWithAlignment
from .generator import DocumentSequenceGenerator, DocumentSequenceGeneratorWithAlignment

__all__ = ["DocumentEnsemble", "DocumentEnsembleWithAlignment", "DocumentSequenceGenerator",
           "DocumentSequenceGeneratorWithAlignment", "generator_choice"]


def generator_choice(args, seq_gen_cls=None, extra_gen_cls_kwargs=None):
    """(seq_gen_cls, extra_gen_cls_kwargs) to pass to ``FairseqTask.build_generator``: this
    package's generator unless the caller chose one, with the ``print_alignment`` option that
    fairseq adds only when it picks the class itself."""
    extra = dict(extra_gen_cls_kwargs or {})
    if seq_gen_cls is not None:
        return seq_gen_cls, extra
    if getattr(args, "print_alignment", False):
        extra["print_alignment"] = args.print_alignment
        return DocumentSequenceGeneratorWithAlignment, extra
    return DocumentSequenceGenerator, extra
