"""The sentences of a document: cut at a separator symbol, or given by a sentence file and
make-docs's ``.lines`` sidecar (each document's 1-based line numbers in that file)."""
from ..safe_io import text_lines


def check_separator(symbol):
    if not symbol or symbol != symbol.strip() or len(symbol.split()) != 1:
        raise ValueError(f"--doc-separator {symbol!r}: a separator is one symbol without whitespace, e.g. '<s>'")
    return symbol


def split_sentences(document, separator):
    """The sentences of ``document`` between its separators, each stripped of surrounding
    whitespace. Taken literally: n separators make n + 1 sentences, so a separator at the start
    or end, or two in a row, make an empty sentence (and a document without one is one
    sentence). Both ``foo <s> bar`` and sentencepiece-detokenised ``foo<s> bar`` split alike."""
    return [sentence.strip() for sentence in document.split(separator)]


def read_sentence_documents(sentences_path, lines_path):
    """Documents as lists of sentences: line i of ``lines_path`` names, by 1-based line number
    in ``sentences_path``, the sentences of document i, in order."""
    sentences = [line.rstrip("\n") for line in text_lines(sentences_path)]
    documents = []
    for number, line in enumerate(text_lines(lines_path), start=1):
        fields = line.split()
        if not fields or not all(f.isdigit() for f in fields):
            raise ValueError(f"{lines_path} line {number}: {line.strip()[:60]!r} is not 1-based line numbers "
                             f"separated by spaces (make-docs's .lines sidecar)")
        numbers = [int(f) for f in fields]
        bad = [n for n in numbers if not 1 <= n <= len(sentences)]
        if bad:
            raise ValueError(f"{lines_path} line {number}: line number {bad[0]} is outside {sentences_path} "
                             f"({len(sentences)} lines): not that file's sidecar")
        documents.append([sentences[n - 1] for n in numbers])
    return documents
