"""fairseq's ``EnsembleModel`` without the per-step copies that do not change what it computes.

Stock ``SequenceGenerator._generate`` calls, at every step: ``forward_decoder`` (which asks the
last decoder layer for its cross-attention, that the generator then keeps in a
(batch·beam, source, max length) buffer re-indexed at every step), ``reorder_encoder_out``
(copying the encoder output, its padding mask, embeddings and source tokens) and
``reorder_incremental_state`` (an ``index_select`` of every layer's cache). Each saving below is
one overridden method of that ensemble, and each keeps the values the decoder sees unchanged:

* ``forward_decoder`` returns no attention, so the generator never allocates nor re-indexes its
  alignment buffer (it only does when the ensemble hands it attention), and the decoder is asked
  for no layer's attention (``alignment_layer`` that matches no layer), so no layer computes
  per-head attention weights for it. Only when alignments are printed is stock's path kept
  (:class:`DocumentEnsembleWithAlignment`).
* ``reorder_encoder_out`` returns the encoder output as it is when the order keeps every row in
  its sentence's block of ``beam`` rows and the batch did not shrink: the generator expanded each
  sentence's encoder row into ``beam`` identical copies, so any order within a block selects
  the same values. Only a shrinking batch (finished sentences removed) needs the gather.
* ``reorder_incremental_state`` does nothing when the order is the identity over the current
  rows (greedy search every step, and beam steps where no hypothesis changed parent): an
  ``index_select`` by ``arange`` copies every cache into an equal one. Other orders go to stock's
  ``index_select``: writing only the rows whose parent changed, in place, measured no faster
  (beam 4, 2 chapters, 800 steps, random weights: 60% of rows change parent at a step; 8.6 s
  either way, benchmarks/README.md), so the simpler stock path stays.
"""
import math
from typing import Dict, List, Optional

import torch
from fairseq.models.transformer import TransformerDecoderBase
from fairseq.sequence_generator import EnsembleModel, EnsembleModelWithAlignment
from torch import Tensor

NO_LAYER = -1  # an alignment layer no decoder layer index equals: no layer returns attention


class DocumentEnsemble(EnsembleModel):
    keep_attention = False

    def __init__(self, models):
        super().__init__(models)
        self.beam_size = 1
        self._rows: Optional[int] = None  # rows of the decoder state, set by the last decoder step
        self.row_constraint = None  # a module whose per-row ``rows`` follow the beam (aligned decoding)

    def set_decoder_beam_size(self, beam_size):
        self.beam_size = beam_size
        super().set_decoder_beam_size(beam_size)

    def forward_encoder(self, net_input: Dict[str, Tensor]):
        self._rows = None  # a new batch: no decoder state yet
        return super().forward_encoder(net_input)

    def forward_decoder(self, tokens, encoder_outs: List[Dict[str, List[Tensor]]],
                        incremental_states: List[Dict[str, Dict[str, Optional[Tensor]]]],
                        temperature: float = 1.0):
        self._rows = tokens.size(0)
        if self.keep_attention or not self.has_incremental_states():
            probs, attn = super().forward_decoder(tokens, encoder_outs, incremental_states, temperature)
            return probs, attn if self.keep_attention else None
        log_probs = []
        for i, model in enumerate(self.models):
            encoder_out = encoder_outs[i] if self.has_encoder() else None
            decoder = model.decoder
            if isinstance(decoder, TransformerDecoderBase):
                out = decoder(tokens, encoder_out=encoder_out, incremental_state=incremental_states[i],
                              alignment_layer=NO_LAYER)
            else:
                out = decoder(tokens, encoder_out=encoder_out, incremental_state=incremental_states[i])
            # As stock: the last position's logits over the temperature, normalised by the model.
            last = (out[0][:, -1:, :].div_(temperature), out[1] if len(out) > 1 else None)
            log_probs.append(model.get_normalized_probs(last, log_probs=True, sample=None)[:, -1, :])
        if self.models_size == 1:
            return log_probs[0], None
        return torch.logsumexp(torch.stack(log_probs, dim=0), dim=0) - math.log(self.models_size), None

    def reorder_encoder_out(self, encoder_outs: Optional[List[Dict[str, List[Tensor]]]], new_order):
        # the generator calls this once to expand the batch to its beams and at every later step
        # with the beam's order, so per-row search state is reordered here with the encoder's
        if self.row_constraint is not None and self.row_constraint.rows is not None:
            self.row_constraint.rows = self.row_constraint.rows.index_select(0, new_order)
        if encoder_outs and all(_encoder_rows(out) == new_order.numel() for out in encoder_outs):
            block = torch.arange(new_order.numel(), device=new_order.device) // self.beam_size
            if torch.equal(new_order // self.beam_size, block):
                return encoder_outs  # every row still reads a copy of its own sentence
        return super().reorder_encoder_out(encoder_outs, new_order)

    def reorder_incremental_state(self, incremental_states: List[Dict[str, Dict[str, Optional[Tensor]]]],
                                  new_order):
        rows = new_order.numel()
        if rows == self._rows and torch.equal(new_order, torch.arange(rows, device=new_order.device)):
            return  # the identity: every cache would be copied into an equal one
        super().reorder_incremental_state(incremental_states, new_order)


class DocumentEnsembleWithAlignment(DocumentEnsemble, EnsembleModelWithAlignment):
    """For ``--print-alignment``: the decoder's attention is returned and buffered as in stock."""
    keep_attention = True


def _encoder_rows(encoder_out) -> Optional[int]:
    """Batch rows of a fairseq transformer encoder output (T x B x C), None for any other kind."""
    if isinstance(encoder_out, dict) and encoder_out.get("encoder_out"):
        return encoder_out["encoder_out"][0].size(1)
    return None
