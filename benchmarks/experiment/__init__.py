"""One experiment runner for the paper's grid, shared by two corpora (toy and Bible).

Does switching positions induce long-context ability? Everything runs through fairseq's own
command-line tools (``python -m fairseq_cli.{preprocess,train,generate}``) with
``--user-dir fairseq_relpos``; a corpus is described by a :class:`Corpus` (its settings, how
it is written and tokenised, its language groups), and a thin script per corpus calls
:func:`main`:

1. the corpus is written (document training data only for the *document languages*), the
   document training data is joined into documents with ``make-docs`` (budget
   ``--doc-budget`` model tokens), and everything is binarised with the base's dictionaries;
2. a small sinusoidal base (stock ``--arch transformer``) is trained on sentences only, with
   the corpus's length cap (``base_positions``);
3. the base is fine-tuned, every cell from the same base checkpoint in its own directory,
   under each regime (full fine-tuning; LoRA and minLoRA through ``--task translation_lora``)
   with each position scheme (sinusoidal kept = stock ``transformer``; ``transformer_rope``,
   ``transformer_alibi``, ``transformer_nope``) on sentences of every language plus the
   documents; regime ``none`` is the switch without fine-tuning (the base's weights in the new
   architecture, written by ``fairseq-relpos convert``). A *variant* cell
   (``REGIME:POSITIONS:VARIANT``) changes the fine-tuning documents (their length, or with
   ``DOC_SHARES`` how many of them) or the decoding options;
4. every model decodes the sentence test set and the document test sets in one
   fairseq-generate run (``--task translation_doc``, raised max positions and max-len-a/b so
   that nothing is truncated), scored per test set (length bucket) and language group with
   sacrebleu's ChrF++ (through ``fairseq_relpos.scoring``, NFKC on both sides) and BLEU, and
   the hypothesis/reference length ratio (whitespace tokens); document test sets also
   sentence by sentence (``aligned_chrf++``: outputs cut at a separator or again by minimum
   edit distance against the reference sentences the corpus writes), their whole-document
   score beside its floors from references alone (``data.floors``);
5. the study of issue 26, after the grid's cells, in its order of importance
   (:func:`.grid.study_jobs`): a *document evaluation set* (:mod:`.doc_eval`: the corpus's
   documents with ``<s>`` between their sentences on both sides, e.g. the Bible's 24 test
   chapters) decoded by every decodable cell in the ``split`` mode (the split-and-join
   baseline), cells fine-tuned on separated documents (``--sep-cells``; ``--sep-seed-cells``
   also for every seed and ``--ft-seeds``, further fine-tuning seeds on the first seed's base)
   in every mode of ``--modes`` (:mod:`.doc_decode`, scored by :mod:`.doc_scores` into each
   cell's ``decodes``), the grid's cells in their other modes, and with ``--looping`` the
   looping experiments (:mod:`.looping`). ``--rescore`` makes every score again from the
   cached outputs.

Cells are cached (``WORKDIR/seed{S}/{cell}/cell.json``) and locked: a re-run skips finished
cells, and a second runner started with ``--reverse`` on the same work directory works
through the list from the other end. ``results.json``, ``results.md`` and one plot per regime
go to ``--outdir``. Extra seeds (after the first) re-train the base and run only
``--extra-seed-cells`` (the headline cells) unless ``--all-cells``.
"""
from .grid import main
from .settings import DOC_SHARES, GEN_POSITIONS, MODES, Corpus

__all__ = ["Corpus", "DOC_SHARES", "GEN_POSITIONS", "MODES", "main"]
