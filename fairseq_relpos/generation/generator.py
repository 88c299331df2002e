"""fairseq's sequence generators over :class:`~.ensemble.DocumentEnsemble`.

The search itself (``SequenceGenerator._generate``) is stock and untouched: these classes only
hand it the ensemble whose hooks skip the copies that change nothing, so hypotheses, scores and
positional scores are stock's.
"""
from fairseq.sequence_generator import SequenceGenerator, SequenceGeneratorWithAlignment

from .ensemble import DocumentEnsemble, DocumentEnsembleWithAlignment


class DocumentSequenceGenerator(SequenceGenerator):
    def __init__(self, models, tgt_dict, **kwargs):
        super().__init__(DocumentEnsemble(models), tgt_dict, **kwargs)


class DocumentSequenceGeneratorWithAlignment(SequenceGeneratorWithAlignment):
    """``--print-alignment``: stock's alignment generator, attention buffer included."""

    def __init__(self, models, tgt_dict, **kwargs):
        super().__init__(models, tgt_dict, **kwargs)
        # The stock class builds its own EnsembleModelWithAlignment; this is the one place it
        # is replaced, by the same ensemble with the reorder hooks, set up as the stock
        # constructor set up its own (beam size for beamable cross-attention, eval mode).
        self.model = DocumentEnsembleWithAlignment(models)
        self.model.set_decoder_beam_size(self.beam_size)
        self.model.eval()
