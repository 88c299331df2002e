#!/usr/bin/env python
"""Translate documents with a model exported by `fairseq-relpos export` (CTranslate2).

Usage: translate_ct2.py [--sentences] [--beam N] [--threads N] CT2_DIR IT2_DIR SRC_LANG TGT_LANG < IN > OUT

  CT2_DIR   the exported directory (fairseq-relpos export CKPT CT2_DIR --data IT2_DIR/final_bin)
  IT2_DIR   the IndicTrans2 release directory, for its SentencePiece models vocab/model.{SRC,TGT}
  SRC_LANG, TGT_LANG   IndicTrans2 language codes, e.g. eng_Latn hin_Deva
  IN        raw text, one sentence a line, blank lines between documents; each document is
            translated whole (--sentences: every line on its own) and written as one line,
            with a blank line between documents

Search options (beam, --max-len-a/-b) are the ones recorded at export (decoding.json), applied
as fairseq-generate applies them (fairseq_relpos.ct2.translate); documents are never cut.
"""
import argparse
import sys

import ctranslate2
import sentencepiece as spm

from fairseq_relpos.ct2.translate import load_decoding, translate_batch


def documents(lines, sentences):
    """Lists of sentences: one per line with --sentences, else one per blank-line block."""
    block = []
    for line in lines:
        text = line.strip()
        if text and sentences:
            yield [text]
        elif text:
            block.append(text)
        elif block:
            yield block
            block = []
    if block:
        yield block


def main():
    parser = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1].removeprefix("Usage: "))
    parser.add_argument("model"), parser.add_argument("it2"), parser.add_argument("src_lang")
    parser.add_argument("tgt_lang")
    parser.add_argument("--sentences", action="store_true", help="translate every line on its own")
    parser.add_argument("--beam", type=int, help="beam size (default: the exported one)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--batch-size", type=int, default=16, help="inputs per batch (default 16)")
    args = parser.parse_args()
    source = spm.SentencePieceProcessor(model_file=f"{args.it2}/vocab/model.SRC")
    target = spm.SentencePieceProcessor(model_file=f"{args.it2}/vocab/model.TGT")
    translator = ctranslate2.Translator(args.model, device="cpu", intra_threads=args.threads)
    decoding = load_decoding(args.model)
    inputs = [[args.src_lang, args.tgt_lang, *source.encode(" ".join(doc), out_type=str)]
              for doc in documents(sys.stdin, args.sentences)]
    inputs_by_length = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))  # less padding
    outputs = [None] * len(inputs)
    for start in range(0, len(inputs), args.batch_size):
        chunk = inputs_by_length[start:start + args.batch_size]
        for i, (pieces, _score) in zip(chunk, translate_batch(translator, [inputs[i] for i in chunk], decoding,
                                                              beam=args.beam)):
            outputs[i] = target.decode(pieces)
    sys.stdout.write(("\n" if args.sentences else "\n\n").join(outputs) + "\n")


if __name__ == "__main__":
    main()
