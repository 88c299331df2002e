"""``--doc-decoding aligned|window|split`` and ``--doc-fallback``, around fairseq's own search.

Every mode runs stock ``SequenceGenerator._generate``; what differs is what it is given:

* ``aligned``: the whole document, with :class:`~.sentence_count.SentenceCount` in the search
  and each document's own length cap (fairseq sets one cap per batch, from its longest source);
* ``split``: every sentence alone (batched within the document batch's padded size), no
  separator allowed inside one, joined with the separator: what users do today, same search;
* ``window``: round r decodes source sentences r-K+1..r with the translations already kept for
  r-K+1..r-1 forced as the target prefix (fairseq's ``prefix_tokens``), and keeps sentence r:
  cost and memory bounded by K sentences a step, whatever the document's length.

A document comes back as fairseq's hypothesis dictionaries, sentences joined by the separator;
split and window hypotheses carry the positional scores of the tokens they kept (a sentence's
``</s>`` score stands for the separator that follows it). With ``--nbest k``, split and window
join every sentence's k-th best (window keeps the best as the next windows' context).
"""
import logging
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from fairseq.sequence_generator import SequenceGenerator

from . import run_on, sentences
from .sentence_count import row_caps

logger = logging.getLogger(__name__)


@dataclass
class DocumentOptions:
    separator: int  # in the target dictionary
    source_separator: int
    mode: str
    window: int
    fallback: str
    left_pad: bool
    tags: frozenset


class DocumentDecoder:
    """The document modes of one generator (a :class:`SequenceGenerator` with a
    :class:`~.sentence_count.SentenceCount` as ``constraint``)."""

    def __init__(self, generator, options: DocumentOptions):
        self.gen, self.opt = generator, options
        self.documents = 0
        self.fell_back = 0

    def generate(self, sample, prefix_tokens=None, constraints=None, bos_token=None):
        src = sample["net_input"]["src_tokens"]
        rows = [sentences.unpadded(row, self.gen.pad) for row in src]
        mode = self.opt.mode
        if mode == "split":
            return self.split(rows, budget=src.numel())
        if mode == "window":
            return self.window(rows)
        if mode == "aligned":
            hypos, caps = self.aligned(sample, rows, prefix_tokens, constraints, bos_token)
        else:
            hypos = self.stock(sample, prefix_tokens, constraints, bos_token)
            caps = [self.batch_cap(src.size(1))] * len(rows)
        if self.opt.fallback != "none":
            self.fall_back(sample, rows, hypos, caps, budget=src.numel())
        return hypos

    # -- the search, given rows and per-row rules --------------------------------------------

    def stock(self, sample, prefix_tokens=None, constraints=None, bos_token=None):
        return SequenceGenerator._generate(self.gen, sample, prefix_tokens=prefix_tokens,
                                           constraints=constraints, bos_token=bos_token)

    def batch_cap(self, src_len):
        """fairseq's ``max_len`` for a batch whose padded source length is ``src_len``."""
        return min(int(self.gen.max_len_a * src_len + self.gen.max_len_b), self.gen.max_len - 1)

    @contextmanager
    def rules(self, required, caps):
        """Search with the sentence-count rule and these per-row caps; the batch's cap is the
        largest of them."""
        gen, count = self.gen, self.gen.constraint
        saved = gen.max_len_a, gen.max_len_b
        count.rows = torch.stack([required, caps], dim=1)
        gen.max_len_a, gen.max_len_b = 0, int(caps.max())
        try:
            yield
        finally:
            gen.max_len_a, gen.max_len_b = saved
            count.rows = None

    def search(self, rows, required, caps, prefixes=None, bos_token=None):
        src_tokens, src_lengths = sentences.collate(rows, self.gen.pad, self.opt.left_pad)
        sample = {"id": torch.arange(len(rows)),
                  "net_input": {"src_tokens": src_tokens.to(self.device), "src_lengths": src_lengths.to(self.device)}}
        prefix_tokens = None
        if prefixes is not None and any(p.numel() for p in prefixes):
            prefix_tokens = sentences.collate(prefixes, self.gen.pad, left_pad=False)[0].to(self.device)
        with self.rules(required.to(self.device), caps.to(self.device)):
            return self.stock(sample, prefix_tokens=prefix_tokens, bos_token=bos_token)

    @property
    def device(self):
        return next(iter(self.gen.model.parameters())).device

    def caps(self, lengths, required, extra=None):
        """Per-row caps from source lengths (``</s>`` included), as :func:`row_caps`."""
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        required = torch.as_tensor(required, dtype=torch.long)
        caps = row_caps(lengths, required, self.gen.max_len_a, self.gen.max_len_b, self.gen.max_len - 1)
        if extra is None:
            return caps
        caps = caps + torch.as_tensor(extra, dtype=torch.long)
        if int(caps.max()) > self.gen.max_len - 1:
            raise ValueError(f"a window needs {int(caps.max())} target tokens, more than the model's "
                             f"{self.gen.max_len - 1}: lower --doc-window or raise --max-target-positions")
        return caps

    # -- the modes -------------------------------------------------------------------------

    def documents_of(self, rows):
        return [sentences.split_document(row, self.opt.source_separator, self.gen.eos, self.opt.tags) for row in rows]

    def aligned(self, sample, rows, prefix_tokens, constraints, bos_token):
        required = [max(len(s) - 1, 0) for _, s in self.documents_of(rows)]
        lengths = sample["net_input"]["src_lengths"].cpu()
        caps = self.caps(lengths, required)
        with self.rules(torch.as_tensor(required).to(self.device), caps.to(self.device)):
            hypos = self.stock(sample, prefix_tokens, constraints, bos_token)
        return hypos, caps.tolist()

    def sentence_rows(self, head, sentence):
        eos = sentence.new_tensor([self.gen.eos])
        return torch.cat([head, sentence, eos])

    def split(self, rows, budget):
        docs = self.documents_of(rows)
        units = [(d, self.sentence_rows(head, s)) for d, (head, sents) in enumerate(docs) for s in sents or [head[:0]]]
        results = [None] * len(units)
        for group in sentences.chunks([u[1].numel() for u in units], budget):
            src = [units[i][1] for i in group]
            required = [0] * len(group)
            hypos = self.search(src, torch.tensor(required), self.caps([r.numel() for r in src], required))
            for i, nbest in zip(group, hypos):
                results[i] = [(h["tokens"][:-1], h["positional_scores"]) for h in nbest]
        per_doc = [[] for _ in docs]
        for (d, _), candidates in zip(units, results):
            per_doc[d].append(candidates)
        return [self.joined(parts) for parts in per_doc]

    def window(self, rows):
        docs = self.documents_of(rows)
        sents = [s or [head[:0]] for head, s in docs]
        kept = [[] for _ in docs]  # per document, per sentence: the n-best (tokens, positional scores)
        K, sep = self.opt.window, self.opt.separator
        for r in range(max(len(s) for s in sents)):
            active = [d for d in range(len(docs)) if r < len(sents[d])]
            src, prefixes, required, lengths, extra = [], [], [], [], []
            for d in active:
                first = max(0, r - K + 1)
                head = docs[d][0]
                src.append(self.sentence_rows(head, sentences.join(sents[d][first:r + 1], sep)))
                context = [kept[d][i][0][0] for i in range(first, r)]
                prefix = torch.cat([sentences.join(context, sep), context[0].new_tensor([sep])]) if context \
                    else head.new_empty(0)
                prefixes.append(prefix)
                required.append(r - first)
                lengths.append(head.numel() + sents[d][r].numel() + 1)
                extra.append(prefix.numel())
            caps = self.caps(lengths, [0] * len(active), extra)
            hypos = self.search(src, torch.tensor(required), caps, prefixes)
            for d, prefix, nbest in zip(active, prefixes, hypos):
                n = prefix.numel()
                kept[d].append([(h["tokens"][n:-1], h["positional_scores"][n:]) for h in nbest])
        return [self.joined(parts) for parts in kept]

    def joined(self, parts):
        """fairseq hypotheses of one document from its sentences' n-best lists."""
        gen = self.gen
        hypos = []
        for k in range(max(len(c) for c in parts)):
            chosen = [c[min(k, len(c) - 1)] for c in parts]
            tokens = sentences.join([t for t, _ in chosen], self.opt.separator)
            tokens = torch.cat([tokens.to(chosen[0][0].device), chosen[0][0].new_tensor([gen.eos])])
            positional = torch.cat([p for _, p in chosen])
            score = positional.sum()
            if gen.normalize_scores:
                score = score / tokens.numel() ** gen.len_penalty
            hypos.append({"tokens": tokens, "score": score, "attention": torch.empty(0),
                          "alignment": torch.empty(0), "positional_scores": positional})
        return hypos

    # -- fallback --------------------------------------------------------------------------

    def fall_back(self, sample, rows, hypos, caps, budget):
        scores = [float(nbest[0]["score"]) for nbest in hypos]
        ids = sample["id"].tolist() if "id" in sample else list(range(len(rows)))
        chosen = []
        for i, nbest in enumerate(hypos):
            source = [t for t in rows[i].tolist() if t != self.gen.eos]
            found = run_on.reasons(nbest[0]["tokens"][:-1].tolist(), source, caps[i], scores[i], scores)
            if found:
                chosen.append(i)
                logger.info("document %s ran on (%s): decoded again with --doc-decoding %s",
                            ids[i], "; ".join(found), self.opt.fallback)
        self.documents += len(rows)
        self.fell_back += len(chosen)
        if not chosen:
            return
        again = [rows[i] for i in chosen]
        redone = self.split(again, budget) if self.opt.fallback == "split" else self.window(again)
        for i, nbest in zip(chosen, redone):
            hypos[i] = nbest
        logger.info("--doc-fallback %s: %d of %d documents so far decoded again",
                    self.opt.fallback, self.fell_back, self.documents)
