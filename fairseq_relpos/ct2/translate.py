"""Decode with an exported CTranslate2 model the way ``fairseq-generate`` searches.

CTranslate2's defaults differ from fairseq's in ways that change translations, documents most:
- it cuts every source at 1,024 tokens (``max_input_length``): 0 turns that off;
- it stops at 256 target tokens (``max_decoding_length``, which counts ``</s>``); fairseq allows
  ``max_len = int(max_len_a * source length + max_len_b)`` tokens (the source length counts
  ``</s>`` and the batch's padding), up to the model's target positions, then forces ``</s>``.
  CTranslate2 cannot force it: with ``max_decoding_length=max_len`` a hypothesis that reaches
  the cap has the same words as fairseq's, without the final ``</s>`` in its score, so a beam
  search that runs into the cap may rank hypotheses differently (a model decoding to the cap is
  failing anyway; give documents a generous ``max_len_a``);
- ``min_decoding_length=1`` forbids ``</s>`` at the first step, as fairseq's ``min_len`` 1:
  no empty hypothesis;
- both divide a hypothesis' log-probability by its length counting ``</s>`` (CTranslate2
  4.8 does so with or without ``return_end_token``; tested), with length penalty 1;
- fairseq bans ``<pad>`` after its log-softmax; CTranslate2 does not ban it (``<blank>`` in its
  vocabulary) at all, so the log-probabilities of every other token are the same, but a model
  that puts ``<pad>`` first (an untrained one) can emit ``<blank>`` where fairseq cannot.
  Suppressing it (``suppress_sequences=[["<blank>"]]``) renormalises before the log-softmax,
  shifting every score by the log of the probability left to ``<pad>``, which is enough to
  reorder beams (tried: the LoRA checkpoint's beam-4 outputs in tests/test_export_ct2.py then
  part from fairseq-generate's beyond the tested near-ties), so it is left to the caller.

``decoding.json`` in the exported directory records the options chosen at export.

Repetition controls (``--repetition-penalty``, ``--no-repeat-ngram-size``) map to CTranslate2's
options of the same names, which count the tokens a hypothesis has emitted, target prefix
included, as the plugin's controls do (``fairseq_relpos.generation.repetition``). What does not
map: ``--no-repeat-ngram-window`` (CTranslate2 bans repeated n-grams over the whole output, with
no window: refused); exempt tokens (CTranslate2 bans and penalises the document separator like
any token); and the penalty's strength (CTranslate2 applies CTRL's rule to the logits, the
plugin to log-probabilities, so the same F penalises by different amounts).

Documents (:func:`translate_documents`), as ``--doc-decoding`` does in fairseq:
- ``split``: every sentence alone, in batches; the translations joined by the separator;
- ``window``: sliding windows of K source sentences, the translations already kept for the
  window's earlier sentences forced as the target prefix (``target_prefix``), only the new
  sentence kept;
- ``aligned`` cannot be done: it needs a constraint on when each hypothesis may emit its end
  token (after as many separators as its source holds), and CTranslate2's search has only a
  minimum length per batch and suppressed sequences, no per-hypothesis count.
"""
import json
import math
import numbers
import os

from ..documents.tags import TAG
from ..repetition_options import check as check_repetition

DECODING_FILE = "decoding.json"
DOCUMENT_MODES = ("split", "window")
NO_WINDOW = ("--no-repeat-ngram-window cannot be applied by CTranslate2: its no_repeat_ngram_size bans "
             "repeated n-grams over the whole output and has no window; leave the window out (the "
             "whole-output ban) or decode with fairseq")
NO_ALIGNED = ("--doc-decoding aligned cannot be done by CTranslate2: it needs a per-hypothesis constraint "
              "on when the end token may come (after as many separators as the source holds), which its "
              "search does not have; use split or window, or decode aligned with fairseq")


def decoding_config(beam=5, max_len_a=1.5, max_len_b=20, min_len=1, max_positions=None,
                    repetition_penalty=1.0, no_repeat_ngram_size=0, no_repeat_ngram_window=0):
    """fairseq-generate's search options, recorded next to the model, checked first: a bad value
    recorded would make every later decoding of the export fail."""
    def number(value, integer):
        kind = numbers.Integral if integer else numbers.Real
        return isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)

    if not number(beam, True) or beam < 1:
        raise ValueError(f"--beam must be a positive integer, got {beam!r}")
    if not number(max_len_a, False) or max_len_a < 0:
        raise ValueError(f"--max-len-a must be a finite number >= 0, got {max_len_a!r}")
    if not number(max_len_b, True) or max_len_b < 0:
        raise ValueError(f"--max-len-b must be an integer >= 0, got {max_len_b!r}")
    if max_len_a == 0 and max_len_b == 0:
        raise ValueError("--max-len-a 0 with --max-len-b 0 allows no target token; raise one of them")
    check_repetition(no_repeat_ngram_size, no_repeat_ngram_window, repetition_penalty)
    if no_repeat_ngram_window:
        raise ValueError(NO_WINDOW)
    config = {"beam": beam, "max_len_a": max_len_a, "max_len_b": max_len_b, "min_len": min_len,
              "length_penalty": 1.0, "max_input_length": 0, "repetition_penalty": float(repetition_penalty),
              "no_repeat_ngram_size": no_repeat_ngram_size}
    if max_positions is not None:  # the rows of a sinusoidal export's position tables
        config["max_positions"] = max_positions
    return config


def load_decoding(model_dir):
    with open(os.path.join(model_dir, DECODING_FILE), encoding="utf-8") as f:
        return json.load(f)


def max_length(decoding, source_lengths, max_target_positions=None):
    """fairseq's ``max_len`` for one batch of sources (token counts without ``</s>``)."""
    src_len = max(source_lengths) + 1  # fairseq counts the batch's padded length with </s>
    limit = int(decoding["max_len_a"] * src_len + decoding["max_len_b"])
    return limit if max_target_positions is None else min(limit, max_target_positions - 1)


def translate_batch(translator, sources, decoding, beam=None, max_target_positions=None, **options):
    """Translate one batch of token lists as fairseq-generate would batch them.

    Returns ``[(tokens, score)]``: the best hypothesis and its length-normalised log-probability
    (fairseq's H- score, in nats rather than fairseq's bits). ``options`` are passed on to
    ``Translator.translate_batch`` (``max_batch_size``, ...). An empty source is refused:
    CTranslate2 returns an empty hypothesis scored 0 for it without decoding, where fairseq
    decodes ``</s>`` alone to at least one token."""
    max_target_positions = _check_sources(sources, decoding, max_target_positions)
    results = _search(translator, sources, decoding, beam,
                      max_length(decoding, [len(s) for s in sources], max_target_positions), **options)
    return [(result.hypotheses[0], result.scores[0]) for result in results]


def _check_sources(sources, decoding, max_target_positions):
    """Refuse what CTranslate2 would decode unlike fairseq; the target positions it may use."""
    empty = [i for i, source in enumerate(sources) if not source]
    if empty:
        raise ValueError(f"source {empty[0]} of the batch is empty: CTranslate2 does not decode an empty "
                         "source (fairseq decodes it as </s> alone); give every source at least one token")
    table = decoding.get("max_positions")  # a sinusoidal export has no positions past its table
    long = [i for i, source in enumerate(sources) if table is not None and len(source) + 1 > table]
    if long:
        raise ValueError(f"source {long[0]} of the batch has {len(sources[long[0]]) + 1} tokens with </s>, more "
                         f"than the {table} rows of this export's sinusoidal position table; export again "
                         f"with fairseq-relpos export --max-positions N (N >= {len(sources[long[0]]) + 1})")
    if table is not None:
        max_target_positions = min(max_target_positions or table, table)
    return max_target_positions


def _search(translator, sources, decoding, beam, max_decoding_length, **options):
    """CTranslate2's search with the recorded options (a decoding.json written before the
    repetition controls existed has none: off)."""
    if decoding.get("no_repeat_ngram_window"):
        raise ValueError(NO_WINDOW)
    options.setdefault("min_decoding_length", decoding["min_len"])
    return translator.translate_batch(
        sources, beam_size=beam or decoding["beam"], length_penalty=decoding["length_penalty"],
        max_input_length=decoding["max_input_length"], return_scores=True,
        repetition_penalty=decoding.get("repetition_penalty", 1.0),
        no_repeat_ngram_size=decoding.get("no_repeat_ngram_size", 0),
        max_decoding_length=max_decoding_length, **options)


def check_separator(model_dir, separator):
    """Refuse a separator that is not one symbol of the export's source and target vocabularies
    (CTranslate2 would read it as <unk>)."""
    names = ["shared_vocabulary.json"] if os.path.exists(os.path.join(model_dir, "shared_vocabulary.json")) \
        else ["source_vocabulary.json", "target_vocabulary.json"]
    for name in names:
        with open(os.path.join(model_dir, name), encoding="utf-8") as f:
            if separator not in json.load(f):
                raise ValueError(f"--doc-separator {separator!r} is not a symbol of {name} in {model_dir}: give "
                                 "the symbol the model was fine-tuned with between sentences")


def split_sentences(document, separator):
    """(language tags, sentences) of a document's tokens: the two leading IndicTrans2 tags if
    there are (repeated before every sentence or window decoded), and the token lists between
    separators (a document without a separator is one sentence; empty ones are kept)."""
    tags = document[:2] if len(document) >= 2 and all(TAG.match(t) for t in document[:2]) else []
    sentences = [[]]
    for token in document[len(tags):]:
        if token == separator:
            sentences.append([])
        else:
            sentences[-1].append(token)
    return tags, sentences


def join_sentences(sentences, separator):
    """Token lists joined by the separator token."""
    joined = []
    for i, sentence in enumerate(sentences):
        joined += ([separator] if i else []) + sentence
    return joined


def translate_documents(translator, documents, decoding, mode, separator, window=2, beam=None, batch_size=16,
                        **options):
    """Translate documents (token lists, sentences joined by ``separator``, tags first if any)
    sentence by sentence: per document the list of its N sentence translations (token lists,
    N the source's sentences; an empty source sentence gets an empty translation, undecoded).

    ``split``: every non-empty sentence alone (with the document's tags), ``batch_size`` at a
    time, shortest first (least padding), each batch capped as fairseq-generate caps it.

    ``window`` (K = ``window``): for sentence r the source is sentences max(1, r-K+1)..r joined
    by the separator, the target prefix the translations kept for sentences max(1, r-K+1)..r-1
    joined by the separator and followed by it (none when the window holds no earlier sentence:
    r = 1, or K = 1). The decode ends at the
    separator or ``</s>`` (``end_token``), may not end right after the prefix (the sequences
    separator-end are suppressed, so the new sentence holds a token), and may emit fairseq's cap
    for the new sentence's own source after the longest prefix of its batch. Only the tokens
    after the prefix are kept, without the end token. Round r of every document that has an
    r-th sentence is decoded together, ``batch_size`` windows per call."""
    if mode == "aligned":
        raise ValueError(NO_ALIGNED)
    if mode not in DOCUMENT_MODES:
        raise ValueError(f"--doc-decoding must be one of {', '.join(DOCUMENT_MODES)} with CTranslate2, got {mode!r}")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"--doc-window must be an integer >= 1, got {window!r}")
    split = [split_sentences(document, separator) for document in documents]
    kept = [[[] for _ in sentences] for _tags, sentences in split]
    rounds = 1 if mode == "split" else max((len(sentences) for _tags, sentences in split), default=0)
    for r in range(rounds):
        jobs = []  # (document, sentence, source, prefix)
        for d, (tags, sentences) in enumerate(split):
            targets = range(len(sentences)) if mode == "split" else [r] if r < len(sentences) else []
            for i in targets:
                if not sentences[i]:
                    continue
                if mode == "split":
                    jobs.append((d, i, tags + sentences[i], None))
                else:
                    first = max(0, i - window + 1)
                    prefix = join_sentences(kept[d][first:i], separator) + [separator] if first < i else None
                    jobs.append((d, i, tags + join_sentences(sentences[first:i + 1], separator), prefix))
        jobs.sort(key=lambda job: len(job[2]))
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            if mode == "split":
                outputs = [tokens for tokens, _score in translate_batch(
                    translator, [job[2] for job in chunk], decoding, beam=beam, **options)]
            else:
                outputs = _window_batch(translator, chunk, split, decoding, separator, beam, **options)
            for (d, i, _source, _prefix), tokens in zip(chunk, outputs):
                kept[d][i] = tokens
    return kept


def _window_batch(translator, chunk, split, decoding, separator, beam, **options):
    """The new sentence of every window of one batch (see :func:`translate_documents`);
    ``split`` holds every document's (tags, sentences)."""
    sources = [job[2] for job in chunk]
    prefixes = [job[3] for job in chunk]
    max_target_positions = _check_sources(sources, decoding, options.pop("max_target_positions", None))
    new = [split[d][0] + split[d][1][i] for d, i, _source, _prefix in chunk]  # the new sentence's source
    longest_prefix = max(len(p or []) for p in prefixes)
    cap = longest_prefix + max_length(decoding, [len(s) for s in new])
    if max_target_positions is not None:
        cap = min(cap, max_target_positions - 1)
    ends = list(dict.fromkeys([separator, "</s>"]))
    if longest_prefix:
        options["suppress_sequences"] = list(options.get("suppress_sequences") or []) + [[separator, end]
                                                                                         for end in ends]
    results = _search(translator, sources, decoding, beam, cap, target_prefix=prefixes if longest_prefix else None,
                      end_token=ends, return_end_token=True, **options)
    kept = []
    for result, prefix in zip(results, prefixes):
        tokens = result.hypotheses[0][len(prefix or []):]
        kept.append(tokens[:-1] if tokens and tokens[-1] in ends else tokens)
    return kept


def readme(decoding, checkpoint):
    """The README.md written into an exported directory."""
    ct2_repetition = "".join(f" {name}={decoding[name]}," for name, off in
                             (("repetition_penalty", 1.0), ("no_repeat_ngram_size", 0)) if decoding[name] != off)
    return f"""# CTranslate2 model exported by fairseq-relpos

Exported from `{os.path.basename(checkpoint)}` with `fairseq-relpos export`. fairseq appends
`</s>` to every source and starts decoding from `</s>`: this model's config does both, so give
it SentencePiece pieces (with the language tags first, e.g. `eng_Latn hin_Deva`, as the
checkpoint was trained), nothing else.

Decode as `fairseq-generate --beam {decoding['beam']} --max-len-a {decoding['max_len_a']} \
--max-len-b {decoding['max_len_b']}` does (these are in `{DECODING_FILE}`, with the repetition
controls chosen at export:{ct2_repetition or " none,"} applied as CTranslate2 defines them):

```python
import ctranslate2
from fairseq_relpos.ct2.translate import load_decoding, translate_batch

translator = ctranslate2.Translator("THIS_DIR", device="cpu", intra_threads=2)
decoding = load_decoding("THIS_DIR")
best = translate_batch(translator, [["eng_Latn", "hin_Deva", "▁Hello", "▁world", "."]], decoding)
```

or with CTranslate2 alone: `translator.translate_batch(sources, beam_size={decoding['beam']},
length_penalty=1,{ct2_repetition} max_input_length=0, min_decoding_length={decoding['min_len']},
max_decoding_length=int({decoding['max_len_a']} * (longest source + 1) + {decoding['max_len_b']}))`.
`max_input_length=0` keeps documents longer than 1,024 tokens whole. Documents sentence by
sentence (sentences joined by a separator token): `translate_documents(translator, documents,
decoding, "split" or "window", separator)` in the same module.
"""
