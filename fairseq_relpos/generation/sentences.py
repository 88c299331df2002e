"""A document's sentences, in token ids: split at the separator, joined back, batched.

A document's sentences are the non-empty runs of tokens between separators (so separators at
the start or end, or two in a row, make no empty sentence; a document without one is one
sentence). IndicTrans2's two language tags, when they start the source, are kept apart and put
back before every sentence or window, as IndicTrans2 tags every sentence it translates.
"""
from typing import List

import torch

from ..documents.tags import TAG


def tag_ids(dictionary):
    """Ids of the symbols that look like IndicTrans2 language tags (``eng_Latn``)."""
    return {i for i, symbol in enumerate(dictionary.symbols) if TAG.match(symbol)}


def unpadded(row, pad):
    return row[row.ne(pad)]


def split_document(tokens, separator, eos, tags):
    """``(tag tokens, [sentence tokens, ...])`` of one source row (no padding); neither part holds
    ``</s>`` or the separator."""
    if tokens.numel() and int(tokens[-1]) == eos:
        tokens = tokens[:-1]
    head = tokens[:0]
    if tokens.numel() >= 2 and int(tokens[0]) in tags and int(tokens[1]) in tags:
        head, tokens = tokens[:2], tokens[2:]
    cuts = tokens.eq(separator).nonzero().flatten().tolist()
    bounds = [-1] + cuts + [tokens.numel()]
    sentences = [tokens[a + 1:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a + 1]
    return head, sentences


def join(parts: List[torch.Tensor], separator):
    """Sentences' tokens joined with the separator between them."""
    if not parts:
        return torch.empty(0, dtype=torch.long)
    sep = parts[0].new_tensor([separator])
    pieces = []
    for i, part in enumerate(parts):
        if i:
            pieces.append(sep)
        pieces.append(part)
    return torch.cat(pieces)


def collate(rows: List[torch.Tensor], pad, left_pad):
    """A padded batch (as fairseq's ``collate_tokens``) and the rows' lengths."""
    lengths = torch.tensor([r.numel() for r in rows], dtype=torch.long)
    out = rows[0].new_full((len(rows), int(lengths.max())), pad)
    for i, row in enumerate(rows):
        if left_pad:
            out[i, out.size(1) - row.numel():] = row
        else:
            out[i, :row.numel()] = row
    return out, lengths


def chunks(lengths, budget):
    """Groups of indices, longest first, each padded batch within ``budget`` tokens
    (rows x longest row); every group holds at least one row."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups, group = [], []
    for i in order:
        if group and (len(group) + 1) * lengths[group[0]] > budget:
            groups.append(group)
            group = []
        group.append(i)
    if group:
        groups.append(group)
    return groups

