"""Dictionaries that print the document separator.

fairseq's ``Dictionary.string`` leaves out ``<s>`` and ``</s>`` from every string it makes (the
``S-``, ``T-``, ``H-`` and ``D-`` lines of fairseq-generate and fairseq-interactive), so a
separator that is one of them would vanish from the output and the sentence boundaries with it.
The document tasks hold a :class:`SeparatorDictionary` instead: the same symbols and ids, whose
``string`` converts each sentence as fairseq does (post-processing included) and puts the
separator back between them.
"""
from fairseq.data import Dictionary


class SeparatorDictionary(Dictionary):
    @classmethod
    def keeping(cls, dictionary, separator):
        """A copy of ``dictionary`` (same symbols, ids and counts) that prints ``separator``."""
        copy = cls.__new__(cls)
        copy.__dict__.update(dictionary.__dict__)
        copy.symbols, copy.count, copy.indices = list(dictionary.symbols), list(dictionary.count), dict(dictionary.indices)
        copy.separator = separator
        return copy

    def string(self, tensor, bpe_symbol=None, escape_unk=False, extra_symbols_to_ignore=None,
               unk_string=None, include_eos=False, separator=" "):
        sep_id = self.index(self.separator)
        if hasattr(tensor, "dim") and tensor.dim() == 2 or not any(int(t) == sep_id for t in tensor):
            return super().string(tensor, bpe_symbol, escape_unk, extra_symbols_to_ignore, unk_string,
                                  include_eos, separator)
        pieces, start = [], 0
        for i, token in enumerate(list(tensor) + [sep_id]):
            if int(token) == sep_id:
                pieces.append(super().string(tensor[start:i], bpe_symbol, escape_unk, extra_symbols_to_ignore,
                                             unk_string, include_eos, separator))
                start = i + 1
        return f"{separator}{self.separator}{separator}".join(pieces).strip()
