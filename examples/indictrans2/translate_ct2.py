#!/usr/bin/env python
"""Translate documents with a model exported by `fairseq-relpos export` (CTranslate2).

Usage: translate_ct2.py [--sentences | --doc-decoding MODE [--doc-separator SYM] [--doc-window K]] [--beam N]
                        [--threads N] CT2_DIR IT2_DIR SRC_LANG TGT_LANG < IN > OUT

  CT2_DIR   the exported directory (fairseq-relpos export CKPT CT2_DIR --data IT2_DIR/final_bin)
  IT2_DIR   the IndicTrans2 release directory, for its SentencePiece models vocab/model.{SRC,TGT}
  SRC_LANG, TGT_LANG   IndicTrans2 language codes, e.g. eng_Latn hin_Deva
  IN        raw text, one sentence a line, blank lines between documents; each document is
            translated whole (--sentences: every line on its own) and written as one line,
            with a blank line between documents
  --doc-decoding split|window   sentence by sentence instead, written as IN is: one line per
            input line, a blank line between documents
            split: every sentence alone (in batches); window: the document in sliding windows
            of K sentences (--doc-window, default 2) joined by SYM (--doc-separator, the symbol
            the model was fine-tuned with between sentences), the translations already kept
            forced as the target prefix, only the new sentence kept. "aligned" cannot be done
            with CTranslate2 (see fairseq_relpos.ct2.translate)

Search options (beam, --max-len-a/-b) are the ones recorded at export (decoding.json), applied
as fairseq-generate applies them (fairseq_relpos.ct2.translate); documents are never cut.
"""
import argparse
import sys

import ctranslate2
import sentencepiece as spm

from fairseq_relpos.ct2.translate import (check_separator, join_sentences, load_decoding, translate_batch,
                                          translate_documents)


def documents(lines, sentences):
    """Lists of sentences: one per line with --sentences (a blank line an empty list, so that
    output lines stay in step with input lines), else one per blank-line block."""
    block = []
    for line in lines:
        text = line.strip()
        if sentences:
            yield [text] if text else []
        elif text:
            block.append(text)
        elif block:
            yield block
            block = []
    if block:
        yield block


def input_lines(stream):
    """The lines of a binary stream as UTF-8 text; a byte that is not UTF-8 ends the run with
    the line named (exit 2), not with the tokenizer's message."""
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            print(f"translate_ct2.py: error: input line {number} is not UTF-8 text (byte "
                  f"{err.object[err.start]:#04x} at byte {err.start + 1} of the line)", file=sys.stderr)
            sys.exit(2)


def main():
    parser = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1].removeprefix("Usage: "))
    parser.add_argument("model"), parser.add_argument("it2"), parser.add_argument("src_lang")
    parser.add_argument("tgt_lang")
    parser.add_argument("--sentences", action="store_true", help="translate every line on its own")
    parser.add_argument("--doc-decoding", choices=("whole", "split", "window", "aligned"), default="whole",
                        help="whole (default), or sentence by sentence: split, window")
    parser.add_argument("--doc-separator", metavar="SYM", help="the sentence separator symbol (window)")
    parser.add_argument("--doc-window", type=int, default=2, metavar="K",
                        help="window size in sentences (default 2, as fairseq-generate's --doc-window)")
    parser.add_argument("--beam", type=int, help="beam size (default: the exported one)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--batch-size", type=int, default=16, help="inputs per batch (default 16)")
    args = parser.parse_args()
    by_sentence = args.doc_decoding != "whole"
    if by_sentence and args.sentences:
        parser.error("--sentences translates lines alone; leave it out with --doc-decoding")
    if args.doc_decoding == "window" and not args.doc_separator:
        parser.error("--doc-decoding window needs --doc-separator SYM, the symbol the model was fine-tuned "
                     "with between sentences")
    decoding = load_decoding(args.model)
    try:
        if args.doc_separator:
            check_separator(args.model, args.doc_separator)
        if by_sentence:  # refuses aligned and a bad --doc-window before any work
            translate_documents(None, [], decoding, args.doc_decoding, args.doc_separator, window=args.doc_window)
    except ValueError as err:
        parser.error(str(err))
    source = spm.SentencePieceProcessor(model_file=f"{args.it2}/vocab/model.SRC")
    target = spm.SentencePieceProcessor(model_file=f"{args.it2}/vocab/model.TGT")
    translator = ctranslate2.Translator(args.model, device="cpu", intra_threads=args.threads)
    docs = list(documents(input_lines(sys.stdin.buffer), args.sentences))
    if by_sentence:
        separator = args.doc_separator or "</s>"  # split sends no separator to the model
        inputs = [[args.src_lang, args.tgt_lang,
                   *join_sentences([source.encode(s, out_type=str) for s in doc], separator)] for doc in docs]
        translated = translate_documents(translator, inputs, decoding, args.doc_decoding, separator,
                                         window=args.doc_window, beam=args.beam, batch_size=args.batch_size)
        sys.stdout.write("\n\n".join("\n".join(target.decode(s) for s in doc) for doc in translated) + "\n")
        return
    inputs = [[args.src_lang, args.tgt_lang, *source.encode(" ".join(doc), out_type=str)] if doc else None
              for doc in docs]
    outputs = ["" if pieces is None else None for pieces in inputs]  # a blank line stays blank
    inputs_by_length = sorted((i for i in range(len(inputs)) if inputs[i] is not None),
                              key=lambda i: len(inputs[i]))  # less padding
    for start in range(0, len(inputs_by_length), args.batch_size):
        chunk = inputs_by_length[start:start + args.batch_size]
        for i, (pieces, _score) in zip(chunk, translate_batch(translator, [inputs[i] for i in chunk], decoding,
                                                              beam=args.beam)):
            outputs[i] = target.decode(pieces)
    sys.stdout.write(("\n" if args.sentences else "\n\n").join(outputs) + "\n")


if __name__ == "__main__":
    main()
