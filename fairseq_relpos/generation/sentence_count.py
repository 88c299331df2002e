"""Aligned decoding's rule: a hypothesis holds exactly its source's number of sentences.

Applied to the log-probabilities of every search step (fairseq's ``repeat_ngram_blocker`` hook
slot, see :mod:`.generator`). Each row carries two numbers, reordered with the beam by the
ensemble (:class:`~.ensemble.DocumentEnsemble`): the separators its document needs and its own
length cap (tokens before the end symbol). At every step a row

* may not end while separators are missing, nor emit a separator once none is missing;
* may emit neither a separator nor the end right after a separator or at the start (no empty
  sentence);
* once what remains of its cap is exactly what completing the count needs (one token then a
  separator per missing sentence), may emit only that pattern, and at its cap only the end.

So the count holds for any model, trained or not, as long as the cap is at least
``2 * separators + 1``: :func:`row_caps` raises each cap to that.
"""
import math

import torch
from torch import nn

NEG_INF = -math.inf


def row_caps(src_lengths, required, max_len_a, max_len_b, model_limit):
    """Each document's cap as fairseq computes a batch's, from its own source length (with
    ``</s>``), raised to what its sentence count needs; a document that the model's target
    positions cannot hold is an error."""
    caps = (src_lengths.double() * max_len_a + max_len_b).long().clamp(max=model_limit)
    needed = 2 * required + 1
    too_long = needed > model_limit
    if too_long.any():
        row = int(too_long.nonzero()[0])
        raise ValueError(f"a document of {int(required[row]) + 1} sentences needs at least {int(needed[row])} "
                         f"target tokens, more than the model's {model_limit}: raise --max-target-positions "
                         f"or use --doc-decoding window")
    return torch.maximum(caps, needed)


class SentenceCount(nn.Module):
    def __init__(self, separator, eos):
        super().__init__()
        self.separator, self.eos = separator, eos
        self.rows = None  # (rows, 2): separators needed, cap; set per batch, reordered by the ensemble

    def forward(self, tokens, lprobs, bsz: int, beam_size: int, step: int):
        required, cap = self.rows[:, 0], self.rows[:, 1]
        emitted = tokens[:, 1:step + 1]
        missing = required - (emitted == self.separator).sum(1)
        last = tokens[:, step]
        boundary = (last == self.separator) | (step == 0)
        remaining = cap - step
        must_end = (remaining <= 0) & (missing <= 0) & ~boundary
        only_separator = (missing > 0) & ~boundary & (remaining <= 2 * missing)
        forbid_end = (missing > 0) | boundary
        forbid_separator = (missing <= 0) | boundary
        lprobs[:, self.eos].masked_fill_(forbid_end, NEG_INF)
        lprobs[:, self.separator].masked_fill_(forbid_separator, NEG_INF)
        for keep, column in ((must_end, self.eos), (only_separator, self.separator)):
            if keep.any():
                kept = lprobs[:, column].clone()
                lprobs.masked_fill_(keep.unsqueeze(1), NEG_INF)
                lprobs[:, column] = torch.where(keep, kept, lprobs[:, column])
        return lprobs
