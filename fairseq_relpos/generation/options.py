"""The document decoding options of ``--task translation_doc`` and ``--task translation_lora``.

Each is checked against the task's dictionaries when the task is built, so a bad value is one
line naming the option before anything is decoded. Without ``--doc-separator`` and with the
defaults, decoding is exactly fairseq's (see :mod:`.generator`).
"""
from dataclasses import dataclass, field
from typing import Optional

from .. import repetition_options

MODES = ("whole", "aligned", "window", "split")
FALLBACKS = ("none", "window", "split")
DEFAULT_WINDOW = 2  # measured best of 2, 4, 8 on the quickstart's documents (docs/documents.md)


@dataclass
class DocumentDecodingConfig:
    doc_separator: Optional[str] = field(
        default=None, metadata={"help": "symbol between the sentences of a document, in source and target "
                                        "(one symbol of both dictionaries, e.g. <s>); default: none"})
    doc_decoding: str = field(  # a plain str: fairseq's ChoiceEnum values do not pickle into checkpoints
        default="whole", metadata={"help": "whole: fairseq's search over the document; aligned: one pass that "
                                           "emits exactly the source's number of sentences; window: sliding "
                                           "windows of --doc-window sentences, the previous translations forced "
                                           "as target prefix; split: every sentence alone, joined"})
    doc_window: int = field(default=DEFAULT_WINDOW,
                            metadata={"help": "source sentences per window of --doc-decoding window"})
    doc_fallback: str = field(
        default="none", metadata={"help": "decode a whole/aligned document again in this mode (window or "
                                          "split) when it runs on: reaches its length cap, repeats n-grams "
                                          "far beyond its source, or scores far below the batch's others"})
    no_repeat_ngram_window: int = field(
        default=0, metadata={"help": "with --no-repeat-ngram-size: only n-grams among the last W "
                                     "emitted tokens are banned (0: all)"})
    repetition_penalty: float = field(
        default=1.0, metadata={"help": "CTRL-style penalty on every token already emitted (> 0; 1 is off), "
                                       "as in Hugging Face and CTranslate2"})


def check(cfg, src_dict, tgt_dict):
    """Refuse bad or contradictory document options; returns nothing."""
    mode, fallback = getattr(cfg, "doc_decoding", "whole"), getattr(cfg, "doc_fallback", "none")
    separator = getattr(cfg, "doc_separator", None)
    if mode not in MODES:
        raise ValueError(f"--doc-decoding must be one of {', '.join(MODES)}, not {mode!r}")
    if fallback not in FALLBACKS:
        raise ValueError(f"--doc-fallback must be one of {', '.join(FALLBACKS)}, not {fallback!r}")
    if not isinstance(cfg.doc_window, int) or cfg.doc_window < 1:
        raise ValueError(f"--doc-window must be a whole number of sentences >= 1, not {cfg.doc_window!r}")
    # the window's tie to --no-repeat-ngram-size (a generation option) is checked with the generator
    repetition_options.check(ngram_size=max(cfg.no_repeat_ngram_window, 0), ngram_window=cfg.no_repeat_ngram_window,
                             penalty=cfg.repetition_penalty)
    if separator is None:
        if mode != "whole":
            raise ValueError(f"--doc-decoding {mode} needs --doc-separator: the symbol between sentences")
        if fallback != "none":
            raise ValueError("--doc-fallback needs --doc-separator: both fallbacks decode sentence by sentence")
        return
    if mode in ("window", "split") and fallback != "none":
        raise ValueError(f"--doc-fallback applies to --doc-decoding whole or aligned, not {mode}")
    if separator == tgt_dict.eos_word:
        raise ValueError(f"--doc-separator {separator} is fairseq's end symbol: the search ends every "
                         f"hypothesis at it and fairseq-generate strips it from output; use "
                         f"{tgt_dict.bos_word}, which every fairseq dictionary holds and fairseq never emits")
    for side, dictionary in (("source", src_dict), ("target", tgt_dict)):
        if len(separator.split()) != 1 or separator != separator.strip():
            raise ValueError(f"--doc-separator must be one symbol without spaces, not {separator!r}")
        if separator not in dictionary.indices or dictionary.index(separator) in (dictionary.pad(),
                                                                                  dictionary.unk()):
            raise ValueError(f"--doc-separator {separator} is not a symbol of the {side} dictionary")


def separator_id(cfg, dictionary):
    separator = getattr(cfg, "doc_separator", None)
    return None if separator is None else dictionary.index(separator)
