#!/usr/bin/env python
"""The paper's experiment in miniature, on the toy corpus: does switching positions induce
long-context ability?

    python benchmarks/length_generalization/run.py                # full grid, seeds 1 and 2
    python benchmarks/length_generalization/run.py --quick        # smoke test, a few minutes
    python benchmarks/length_generalization/run.py --seeds 1 2 3  # more seeds

The shipped toy corpus (``fairseq_relpos.corpora.toy``: eng_Toyl into four toy languages;
document training data only for the *document languages* toya/toyb, whitespace tokens) run
through the shared grid of ``benchmarks/experiment/`` (see there: base, switch, full / LoRA /
minLoRA fine-tuning with each position scheme, document decoding with ``--task
translation_doc``, ChrF++ per length bucket for seen and unseen languages). The document test
sets have 2..32 sentences (up to ~20x the longest training sentence). Results go next to this
script (``--quick``: into the work directory).
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from benchmarks.experiment import DOC_SHARES, Corpus, main  # noqa: E402
from fairseq_relpos.corpora.toy import DOC_SENTENCES, pronoun_accuracy, write_toy_corpus  # noqa: E402


def doc_splits(lengths):
    return [("sent", "test")] + [(f"doc{n}", f"test-doc{n}") for n in lengths]


# Sizes. "full" is sized for well under an hour on 2 shared CPU cores (see benchmarks/README.md).
SETTINGS = {
    "full": dict(layers=3, dim=128, ffn=256, heads=4, base_updates=500, ft_updates=150,
                 max_tokens=4096, beam=1, docs_per_split=32, test_sentences=200,
                 eval_splits=doc_splits(DOC_SENTENCES), base_positions=1024, ft_positions=1024,
                 doc_eval=dict(split="test-doc32", name="doc32", docs=None),
                 looping=dict(ft_updates=(500, 1500), base_updates=())),  # the base keeps no earlier checkpoint
    "quick": dict(layers=2, dim=64, ffn=128, heads=4, base_updates=60, ft_updates=10,
                  max_tokens=2048, beam=1, docs_per_split=4, test_sentences=8,
                  eval_splits=doc_splits((2, 32)), base_positions=1024, ft_positions=1024,
                  doc_eval=dict(split="test-doc8", name="doc8", docs=1),
                  looping=dict(ft_updates=(20,), base_updates=(60,))),
}


def write(root, cfg, args):
    corpus = write_toy_corpus(root, seed=args.corpus_seed)
    return corpus, corpus.files  # whitespace tokens: the model reads the text itself


def write_separated(root, cfg, args, separator, model_root, splits, overrides=None):
    """The corpus again with ``separator`` between the sentences of its test documents."""
    corpus = write_toy_corpus(root, seed=args.corpus_seed, separator=separator)
    return corpus, corpus.files


def group(lang, doc_languages):
    return "seen" if lang in doc_languages else "unseen"


TOY = Corpus(name="toy corpus", here=HERE, settings=SETTINGS, write=write, group=group, variants=dict(DOC_SHARES),
             write_separated=write_separated, context=pronoun_accuracy)

if __name__ == "__main__":
    main(TOY)
