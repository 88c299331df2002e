"""The grid's fixed settings (positions, regimes, optimiser settings per stage, training and
decoding options) and :class:`Corpus`, what differs between corpora."""
from dataclasses import dataclass, field
from pathlib import Path

POSITIONS = ("sinusoidal", "rope", "alibi", "nope")
ARCH = {"sinusoidal": "transformer", "rope": "transformer_rope", "alibi": "transformer_alibi",
        "nope": "transformer_nope"}
REGIMES = ("none", "full", "lora", "minlora")
OPTIM = {  # learning rates and warm-up per stage
    "base": dict(lr=3e-3, warmup=150),
    "full": dict(lr=1e-3, warmup=50),
    "lora": dict(lr=3e-3, warmup=50),
    "minlora": dict(lr=3e-3, warmup=50),
}
COMMON_TRAIN = ["--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
                "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
                "--dropout", "0.1", "--weight-decay", "0.0001", "--no-epoch-checkpoints",
                "--num-workers", "0", "--no-progress-bar", "--log-interval", "50",
                "--log-format", "simple"]
GEN_POSITIONS = 8192
DOC_SHARES = {  # the paper's open question, how little document data: the same updates on less of it
    "docs0": dict(doc_share=0.0, about="no fine-tuning documents, sentences only"),
    "docs12": dict(doc_share=0.125, about="an eighth of the fine-tuning documents"),
    "docs50": dict(doc_share=0.5, about="half of the fine-tuning documents"),
}


SEPARATOR = "<s>"  # between sentences: every fairseq dictionary holds it, fairseq never emits it
SEP_VARIANTS = {  # the remedy of issue 25 on the grid: documents that mark their sentences
    "sep": dict(separator=SEPARATOR, about=f"the plain cell's fine-tuning documents with {SEPARATOR} between "
                                           "their sentences on both sides"),
    "sep-scale2": dict(separator=SEPARATOR, regimes=("minlora",), train=("--lora-alpha", 8),
                       about="sep, minLoRA at LoRA's effective scale (alpha/rank 8/4 = 2.0 as LoRA's 16/8, "
                             "not minLoRA's 1/4)"),
}
MODES = {  # decoding modes of the document evaluation set: fairseq-generate options under --task translation_doc;
    #        sep_only: for models fine-tuned with separators; repetition: needs the plugin's repetition controls
    "whole": dict(args=("--doc-decoding", "whole"), about="fairseq's search over the whole document"),
    "aligned": dict(args=("--doc-decoding", "aligned"), sep_only=True,
                    about="one pass that emits exactly the source's number of sentences"),
    "window": dict(args=("--doc-decoding", "window", "--doc-window", 4),
                   about="windows of 4 sentences, the previous translations forced as target prefix"),
    "split": dict(args=("--doc-decoding", "split"), about="every sentence alone, joined: the baseline"),
    "whole+fallback": dict(args=("--doc-decoding", "whole", "--doc-fallback", "window"), sep_only=True,
                           about="whole; a document that runs on decoded again with window"),
    "aligned+fallback": dict(args=("--doc-decoding", "aligned", "--doc-fallback", "window"), sep_only=True,
                             about="aligned; a document that runs on decoded again with window"),
    "aligned+norepeat": dict(args=("--doc-decoding", "aligned", "--no-repeat-ngram-size", 4,
                                   "--no-repeat-ngram-window", 64), sep_only=True, repetition=True,
                             about="aligned, no token 4-gram repeated within 64 tokens"),
}
PLAIN_MODES = ("split", "whole", "window")  # of a model fine-tuned without separators (the base's too)
LOOPING_DECODES = {  # why the models loop: the whole document searched otherwise (issue 26 item 5);
    # run in this order, so a cut session keeps the two ends of the length preference (no
    # normalisation is lenpen 0) and the repetition control before lenpen 0.5, which lies between
    "greedy": dict(args=("--beam", 1), about="beam 1"),
    "unnormalized": dict(args=("--unnormalized",), about="scores not divided by length"),
    "norepeat": dict(args=("--no-repeat-ngram-size", 4), repetition=True, about="no token 4-gram repeated"),
    "lenpen0.5": dict(args=("--lenpen", 0.5), about="length penalty 0.5 (shorter outputs preferred)"),
}


def looping_variants(cfg):
    """The looping experiments' fine-tuning variants of the separator cells: more updates, no
    label smoothing, an earlier base checkpoint (update counts from ``cfg["looping"]``)."""
    loop = cfg.get("looping", dict(ft_updates=(), base_updates=()))
    out = {f"sep-u{n}": dict(separator=SEPARATOR, ft_updates=n, about=f"sep, {n} fine-tuning updates")
           for n in loop["ft_updates"]}
    out["sep-nols"] = dict(separator=SEPARATOR, train=("--label-smoothing", 0.0), about="sep, no label smoothing")
    for n in loop["base_updates"]:
        out[f"sep-from{n}"] = dict(separator=SEPARATOR, base_checkpoint=n,
                                   about=f"sep, fine-tuned from the base's checkpoint at {n} updates")
    return out


def ft_data_key(name, variant):
    """The fine-tuning data a variant trains on: its own (other documents), the separated
    documents every separator variant shares (``sep``), or None (the plain cell's)."""
    if "doc_budget" in variant or "doc_share" in variant:
        return name
    return "sep" if "separator" in variant else None


def changes_training(variant):
    """Whether a variant (a ``Corpus.variants`` value) fine-tunes on other data or otherwise,
    rather than decoding the plain cell's checkpoint again."""
    return bool({"doc_budget", "doc_share", "separator", "train", "ft_updates", "base_checkpoint"} & set(variant))


@dataclass
class Corpus:
    """What differs between corpora. ``write(root, cfg, args)`` writes the corpus under ``root``
    and returns ``(corpus, encoded)``: ``corpus.files(split)`` are the raw text files (the
    references), ``encoded(split)`` the files the model reads (the same for whitespace-token
    corpora). ``group(lang, doc_languages)`` names a language's group; ``groups`` are the
    report's columns, in order."""
    name: str
    here: Path                      # the thin script's directory: default work and output dirs
    settings: dict                  # "full" and "quick": sizes, updates, test sets
    write: callable
    group: callable
    groups: tuple = ("seen", "unseen")
    model_args: tuple = ()          # extra architecture options of the base (kept by fine-tuning)
    gen_args: tuple = ()            # extra fairseq-generate options
    doc_budget: int = 128
    doc_min_budget: int = 16
    positions: tuple = POSITIONS
    extra_seed_cells: tuple = ("full:sinusoidal", "full:rope")
    variants: dict = field(default_factory=dict)  # name -> dict(doc_budget, doc_min_budget, ft_positions),
    #                                                dict(doc_share) (see DOC_SHARES) or dict(gen=[...])
    variant_cells: tuple = ()
    modes: tuple = ()               # decoding modes of the document evaluation set run by default (MODES)
    sep_cells: tuple = ()           # cells fine-tuned on separated documents, in order of importance
    sep_seed_cells: tuple = ()      # of those, the ones run for every seed and fine-tuning seed
    add_arguments: callable = None  # corpus-specific options
    fingerprint: callable = None    # corpus-specific settings that invalidate a work directory
    write_separated: callable = None  # (root, cfg, args, separator, model_root, splits, overrides) -> (corpus,
    #                                    encoded): the corpus again, its test documents' sentences separated
    encoded_dir: str = "."          # where under the written corpus the model's (encoded) files are
    context: callable = None        # (languages, hypotheses, references, separator) -> (right, total): the
    #                                  words only the context tells, translated right (the toy's pronouns)
