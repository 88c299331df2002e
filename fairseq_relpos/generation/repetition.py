"""Repetition controls for fairseq's search that work on the CPU as on the GPU.

fairseq's ``SequenceGenerator._generate`` calls ``self.repeat_ngram_blocker(tokens, lprobs, bsz,
beam_size, step)`` at every step, after its length and prefix handling: ``tokens`` is the
(bsz·beam, max_len + 2) buffer (column 0 the start symbol, columns 1..step the tokens emitted so
far, pad after), ``lprobs`` the (bsz·beam, V) log-probabilities of the token for column step + 1.
Stock's ``NGramRepeatBlock`` bans nothing on the CPU: its Python path compares the *last* n-1
columns of the whole buffer, which are padding, with the earlier n-grams (fairseq issues #4709,
#5206; its CUDA extension is right). :class:`RepetitionControls` takes that hook's place.

What counts, as in CTranslate2 (``src/decoding_utils.cc``, ``NoRepeatNgram`` and
``RepetitionPenalty``, applied to each hypothesis' ``alive_seq``): the tokens the hypothesis has
emitted, forced prefix tokens included, the start symbol not (Hugging Face counts its decoder
start token; CTranslate2 does not).

* ``ngram_size`` N: a token that would complete an N-gram the hypothesis already holds is
  banned (-inf). Any token may be banned, ``</s>`` included, as CTranslate2 does (``</s>`` is
  never among an unfinished hypothesis' emitted tokens unless it is the document separator,
  which is then exempt). Vectorised: per step, N-1 tensor comparisons over the emitted tokens
  (O(step) elementwise work, no Python loop over positions).
* ``ngram_window`` W (0: unlimited): only N-grams that start within the last W emitted tokens
  count, so a long document may repeat a name. CTranslate2 has no such option.
* ``penalty`` F (1: off): the CTRL repetition penalty on every distinct token already emitted.
  CTranslate2 applies it to the raw logits (x·F where x < 0, x/F where x >= 0) and then
  log-softmaxes; Hugging Face's beam search applies the same rule to log-softmaxed scores and
  does not renormalise. This hook sees log-probabilities only (the ensemble averages
  probabilities; the logits' offset, which decides CTranslate2's sign test, is gone), so a
  penalised token's log-probability is multiplied by F, as in Hugging Face's beam search, and
  the row is then renormalised, as in CTranslate2. The same F therefore penalises by a
  different amount than in CTranslate2: the direction is the same, the strengths are not.
* ``exempt``: token ids (the document separator) never banned nor penalised. They take part in
  n-grams like any token: an n-gram holding one is banned unless the token to ban is exempt.

After the penalty and the bans each row keeps the probability mass fairseq gave it, spread over
the tokens still allowed (a normalised row stays normalised, so with the penalty off the search
is CTranslate2's ``no_repeat_ngram_size`` exactly, up to fairseq's ``<pad>`` ban); a row whose
only allowed token was forced (a prefix token, ``</s>`` at the length cap) keeps its score. A
row the bans would leave without any finite token is left as it was: a forced token is never
banned away.
"""
import math

import torch
from torch import nn

from ..repetition_options import check


class RepetitionControls(nn.Module):
    def __init__(self, ngram_size=0, ngram_window=0, penalty=1.0, exempt=()):
        super().__init__()
        check(ngram_size, ngram_window, penalty)
        self.ngram_size = int(ngram_size)
        self.ngram_window = int(ngram_window)
        self.penalty = float(penalty)
        self.exempt = sorted({int(t) for t in exempt})
        self._exempt_ids = {}  # device -> tensor of the exempt ids

    def active(self):
        return self.ngram_size > 0 or self.penalty != 1.0

    def forward(self, tokens, lprobs, bsz: int, beam_size: int, step: int):
        if step == 0 or not self.active():
            return lprobs
        history = tokens[:, 1:step + 1]
        changed = self._penalised(history, lprobs) if self.penalty != 1.0 else None
        banned = self.banned(history) if self.ngram_size else None
        if banned is not None:
            changed = lprobs.clone() if changed is None else changed
            changed[banned] = -math.inf
        if changed is None:
            return lprobs
        return _keep_mass(lprobs, changed)

    def banned(self, history):
        """(rows, tokens): index pairs of the tokens that would complete a repeated n-gram in
        their row, None if there are none."""
        n, rows = self.ngram_size, history.size(0)
        recent = history[:, -self.ngram_window:] if self.ngram_window else history
        length = recent.size(1)
        starts = length - n + 1  # n-grams recent[:, j:j + n], j < starts, are complete
        if starts < 1:
            return None
        match = torch.ones(rows, starts, dtype=torch.bool, device=history.device)
        for k in range(n - 1):  # the n-gram's first n-1 tokens against the last n-1 emitted
            match &= recent[:, k:k + starts] == recent[:, length - n + 1 + k:length - n + 2 + k]
        if self.exempt:
            match &= ~torch.isin(recent[:, n - 1:], self._exempt(history.device))
        row, start = match.nonzero(as_tuple=True)
        if row.numel() == 0:
            return None
        return row, recent[row, start + n - 1]

    def _penalised(self, history, lprobs):
        """Every emitted token's log-probability times the penalty (once however often emitted:
        a scatter writes the same value for repeated ids)."""
        penalised = lprobs.scatter(1, history, lprobs.gather(1, history) * self.penalty)
        if self.exempt:
            exempt = self._exempt(lprobs.device)
            penalised[:, exempt] = lprobs[:, exempt]
        return penalised

    def _exempt(self, device):
        if device not in self._exempt_ids:
            self._exempt_ids[device] = torch.tensor(self.exempt, dtype=torch.long, device=device)
        return self._exempt_ids[device]

    def extra_repr(self):
        return (f"ngram_size={self.ngram_size}, ngram_window={self.ngram_window}, "
                f"penalty={self.penalty}, exempt={self.exempt}")


def _keep_mass(before, after):
    """``after`` shifted per row so that its probability mass is ``before``'s; rows left
    without a finite entry (or that had none) are ``before``'s."""
    mass_before = torch.logsumexp(before, dim=1, keepdim=True)
    mass_after = torch.logsumexp(after, dim=1, keepdim=True)
    usable = torch.isfinite(mass_after) & torch.isfinite(mass_before)
    return torch.where(usable, after + (mass_before - mass_after), before)
