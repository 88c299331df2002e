"""Whole documents through ``fairseq-generate`` and ``fairseq-interactive`` at the model's cost.

``--task translation_doc`` and ``--task translation_lora`` build their generator through
:class:`DocumentGenerationTask`: stock ``SequenceGenerator`` search over an ensemble that skips
the per-step copies that change nothing (see :mod:`.ensemble`), with the document modes and
repetition controls of :mod:`.options` when asked for. ``--score-reference`` and callers that
choose their own generator class keep fairseq's.
"""
from .. import repetition_options
from . import options
from .ensemble import DocumentEnsemble, DocumentEnsembleWithAlignment
from .generator import DocumentSequenceGenerator, DocumentSequenceGeneratorWithAlignment
from .modes import DocumentOptions
from .options import DocumentDecodingConfig
from .printing import SeparatorDictionary
from .sentences import tag_ids

__all__ = ["DocumentDecodingConfig", "DocumentEnsemble", "DocumentEnsembleWithAlignment",
           "DocumentGenerationTask", "DocumentSequenceGenerator", "DocumentSequenceGeneratorWithAlignment"]


class DocumentGenerationTask:
    """Mixin for a ``TranslationTask`` whose config has :class:`DocumentDecodingConfig`'s fields:
    the options are checked when the task is built, and the generator is this package's."""

    def __init__(self, cfg, src_dict, tgt_dict):
        options.check(cfg, src_dict, tgt_dict)
        if cfg.doc_separator is not None:  # so that printed sources and hypotheses keep it
            src_dict = SeparatorDictionary.keeping(src_dict, cfg.doc_separator)
            tgt_dict = SeparatorDictionary.keeping(tgt_dict, cfg.doc_separator)
        super().__init__(cfg, src_dict, tgt_dict)

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        extra = dict(extra_gen_cls_kwargs or {})
        if seq_gen_cls is None and not getattr(args, "score_reference", False):
            seq_gen_cls = self._generator_class(args, extra)
            extra.update(self._document_kwargs(args))
        return super().build_generator(models, args, seq_gen_cls, extra, prefix_allowed_tokens_fn)

    @staticmethod
    def _generator_class(args, extra):
        """fairseq adds ``print_alignment`` only when it picks the class itself."""
        if getattr(args, "print_alignment", False):
            extra["print_alignment"] = args.print_alignment
            return DocumentSequenceGeneratorWithAlignment
        return DocumentSequenceGenerator

    def _document_kwargs(self, args):
        cfg, mode = self.cfg, self.cfg.doc_decoding
        ngram = getattr(args, "no_repeat_ngram_size", 0) or 0
        repetition_options.check(ngram, cfg.no_repeat_ngram_window, cfg.repetition_penalty)
        sentence_aware = mode != "whole" or cfg.doc_fallback != "none"
        if sentence_aware and getattr(args, "print_alignment", False):
            raise ValueError("--print-alignment works with --doc-decoding whole only (no --doc-fallback)")
        if mode in ("window", "split") or cfg.doc_fallback != "none":
            if getattr(args, "prefix_size", 0):
                raise ValueError("--prefix-size works with --doc-decoding whole or aligned, without --doc-fallback")
            if getattr(args, "constraints", False):
                raise ValueError("--constraints work with --doc-decoding whole or aligned, without --doc-fallback")
        separator = options.separator_id(cfg, self.tgt_dict)
        documents = None
        if sentence_aware:
            documents = DocumentOptions(separator=separator, source_separator=options.separator_id(cfg, self.src_dict),
                                        mode=mode, window=cfg.doc_window,
                                        fallback=cfg.doc_fallback, left_pad=cfg.left_pad_source,
                                        tags=frozenset(tag_ids(self.src_dict)))
        repetition = None
        if ngram or cfg.repetition_penalty != 1.0:
            from .repetition import RepetitionControls

            repetition = RepetitionControls(ngram_size=ngram, ngram_window=cfg.no_repeat_ngram_window,
                                            penalty=cfg.repetition_penalty,
                                            exempt=() if separator is None else (separator,))
        return {"documents": documents, "repetition": repetition}
