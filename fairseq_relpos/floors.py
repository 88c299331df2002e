"""What a whole-document ChrF++ is worth: scores of outputs made from the references alone.

Scored as one segment, a long document's ChrF++ compares bags of character and word n-grams,
so text of the right language and length scores well without translating anything. Each floor
is the corpus ChrF++ (documents as segments, as the whole-document score) of a construction:

* ``wrong_document``: another document's reference of the same language (the one nearest in
  length, the first on a tie), its tokens cut or repeated to the document's own length;
* ``prefix_0.15``, ``prefix_0.30``, ``prefix_0.63``: the reference itself cut at that share of
  its tokens (a perfect translation that stops early);
* ``looped_prefix``: the reference's first 3% of tokens (at least one), then the sentence in
  which they end repeated to 1.2 times the reference's length (a decoder that loops); only for
  documents of two or more non-empty sentences.

Tokens are whitespace tokens; documents are joined from their sentences by single spaces.
"""
from collections import defaultdict

from sacrebleu.metrics import CHRF

PREFIXES = (0.15, 0.30, 0.63)
LOOP_START, LOOP_LENGTH = 0.03, 1.2


def floors(documents, languages=None):
    """``{name: {"chrf++", "documents"}}`` for the constructions above (``chrf++`` None where no
    document allows one). ``documents``: each a list of reference sentences (already normalised
    as the hypotheses will be); ``languages``: each document's language (None: all one)."""
    if not documents:
        raise ValueError("no reference documents to compute floors from")
    texts, made = constructions(documents, languages)
    chrf = CHRF(word_order=2)
    out = {}
    for name, hyps in made.items():
        ids = sorted(hyps)
        score = chrf.corpus_score([hyps[i] for i in ids], [[texts[i] for i in ids]]).score if ids else None
        out[name] = {"chrf++": score, "documents": len(ids)}
    return out


def constructions(documents, languages=None):
    """``(texts, made)``: each document joined into one text, and ``{name: {document number:
    output}}`` for the constructions above (a document missing where none can be made), to be
    scored whole (:func:`floors`) or sentence by sentence."""
    languages = languages if languages is not None else [None] * len(documents)
    texts = [" ".join(s for s in doc if s.strip()) for doc in documents]
    made = {"wrong_document": wrong_documents(texts, languages)}
    for share in PREFIXES:
        made[f"prefix_{share:.2f}"] = {i: _cut(t.split(), share) for i, t in enumerate(texts)}
    made["looped_prefix"] = {i: looped_prefix(doc) for i, doc in enumerate(documents)
                             if sum(bool(s.strip()) for s in doc) >= 2}
    return texts, made


def wrong_documents(texts, languages):
    """For each document with another of its language: that other text at this one's length."""
    by_language = defaultdict(list)
    for i, lang in enumerate(languages):
        by_language[lang].append(i)
    out = {}
    for i, text in enumerate(texts):
        others = [j for j in by_language[languages[i]] if j != i and texts[j].split()]
        if others:
            n = len(text.split())
            other = min(others, key=lambda j: (abs(len(texts[j].split()) - n), j))
            out[i] = " ".join(_to_length(texts[other].split(), n))
    return out


def looped_prefix(sentences):
    tokens, owner = [], []
    for k, sentence in enumerate(sentences):
        tokens += sentence.split()
        owner += [k] * len(sentence.split())
    start = max(1, _share(len(tokens), LOOP_START))
    loop = sentences[owner[start - 1]].split()
    return " ".join(tokens[:start] + _to_length(loop, _share(len(tokens), LOOP_LENGTH) - start))


def _cut(tokens, share):
    return " ".join(tokens[:_share(len(tokens), share)])


def _share(n, share):
    return int(n * share + 0.5)


def _to_length(tokens, n):
    """``tokens`` repeated from the start as often as needed, cut at ``n``."""
    return (tokens * (n // len(tokens) + 1))[:max(0, n)]
