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


def changes_training(variant):
    """Whether a variant (a ``Corpus.variants`` value) fine-tunes on other data, rather than
    decoding the plain cell's checkpoint again."""
    return "doc_budget" in variant or "doc_share" in variant


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
    add_arguments: callable = None  # corpus-specific options
    fingerprint: callable = None    # corpus-specific settings that invalidate a work directory
