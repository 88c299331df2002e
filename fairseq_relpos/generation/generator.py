"""fairseq's sequence generators over :class:`~.ensemble.DocumentEnsemble`.

Without document options the search is stock ``SequenceGenerator._generate``, untouched: these
classes only hand it the ensemble whose hooks skip the copies that change nothing, so hypotheses,
scores and positional scores are stock's. With them, :class:`~.modes.DocumentDecoder` runs the
chosen mode around that same search, and the log-probability rules (repetition controls, the
sentence count) sit in the one slot stock's search offers for them, ``repeat_ngram_blocker``,
which it calls at every step after its own length and prefix rules.
"""
from typing import Optional

from fairseq.sequence_generator import SequenceGenerator, SequenceGeneratorWithAlignment
from torch import nn

from .ensemble import DocumentEnsemble, DocumentEnsembleWithAlignment
from .modes import DocumentDecoder, DocumentOptions
from .sentence_count import SentenceCount


class LogProbRules(nn.Module):
    """Rules applied in turn to a step's log-probabilities (fairseq's blocker call signature)."""

    def __init__(self, rules):
        super().__init__()
        self.rules = nn.ModuleList(rules)

    def forward(self, tokens, lprobs, bsz: int, beam_size: int, step: int):
        for rule in self.rules:
            if not isinstance(rule, SentenceCount) or rule.rows is not None:
                lprobs = rule(tokens, lprobs, bsz, beam_size, step)
        return lprobs


class DocumentModesMixin:
    """Installs the rules and the document modes on a stock generator."""

    def _install(self, documents: Optional[DocumentOptions], repetition):
        rules = [repetition] if repetition is not None else []
        self.constraint = None
        self.documents = None
        if documents is not None:
            self.constraint = SentenceCount(documents.separator, self.eos)
            self.model.row_constraint = self.constraint
            rules.append(self.constraint)
            self.documents = DocumentDecoder(self, documents)
        if rules:
            self.repeat_ngram_blocker = LogProbRules(rules)

    def _generate(self, sample, prefix_tokens=None, constraints=None, bos_token=None):
        if self.documents is None:
            return super()._generate(sample, prefix_tokens=prefix_tokens, constraints=constraints,
                                     bos_token=bos_token)
        return self.documents.generate(sample, prefix_tokens, constraints, bos_token)


class DocumentSequenceGenerator(DocumentModesMixin, SequenceGenerator):
    def __init__(self, models, tgt_dict, documents=None, repetition=None, **kwargs):
        super().__init__(DocumentEnsemble(models), tgt_dict, **kwargs)
        self._install(documents, repetition)


class DocumentSequenceGeneratorWithAlignment(DocumentModesMixin, SequenceGeneratorWithAlignment):
    """``--print-alignment``: stock's alignment generator, attention buffer included."""

    def __init__(self, models, tgt_dict, documents=None, repetition=None, **kwargs):
        super().__init__(models, tgt_dict, **kwargs)
        # The stock class builds its own EnsembleModelWithAlignment; this is the one place it
        # is replaced, by the same ensemble with the reorder hooks, set up as the stock
        # constructor set up its own (beam size for beamable cross-attention, eval mode).
        self.model = DocumentEnsembleWithAlignment(models)
        self.model.set_decoder_beam_size(self.beam_size)
        self.model.eval()
        self._install(documents, repetition)
