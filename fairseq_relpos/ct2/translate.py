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
- fairseq bans ``<pad>`` after its log-softmax, CTranslate2 before: a hypothesis' score can
  differ by the log of the probability given to ``<pad>`` (measured up to about 1e-3 nats), so
  two hypotheses that fairseq finds almost equally good may come out in the other order.

``decoding.json`` in the exported directory records the options chosen at export.
"""
import json
import math
import numbers
import os

DECODING_FILE = "decoding.json"


def decoding_config(beam=5, max_len_a=1.5, max_len_b=20, min_len=1, max_positions=None):
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
    config = {"beam": beam, "max_len_a": max_len_a, "max_len_b": max_len_b, "min_len": min_len,
              "length_penalty": 1.0, "max_input_length": 0}
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
    results = translator.translate_batch(
        sources, beam_size=beam or decoding["beam"], length_penalty=decoding["length_penalty"],
        max_input_length=decoding["max_input_length"], return_scores=True,
        max_decoding_length=max_length(decoding, [len(s) for s in sources], max_target_positions),
        min_decoding_length=decoding["min_len"], **options)
    return [(result.hypotheses[0], result.scores[0]) for result in results]


def readme(decoding, checkpoint):
    """The README.md written into an exported directory."""
    return f"""# CTranslate2 model exported by fairseq-relpos

Exported from `{os.path.basename(checkpoint)}` with `fairseq-relpos export`. fairseq appends
`</s>` to every source and starts decoding from `</s>`: this model's config does both, so give
it SentencePiece pieces (with the language tags first, e.g. `eng_Latn hin_Deva`, as the
checkpoint was trained), nothing else.

Decode as `fairseq-generate --beam {decoding['beam']} --max-len-a {decoding['max_len_a']} \
--max-len-b {decoding['max_len_b']}` does (these are in `{DECODING_FILE}`):

```python
import ctranslate2
from fairseq_relpos.ct2.translate import load_decoding, translate_batch

translator = ctranslate2.Translator("THIS_DIR", device="cpu", intra_threads=2)
decoding = load_decoding("THIS_DIR")
best = translate_batch(translator, [["eng_Latn", "hin_Deva", "▁Hello", "▁world", "."]], decoding)
```

or with CTranslate2 alone: `translator.translate_batch(sources, beam_size={decoding['beam']},
length_penalty=1, max_input_length=0, min_decoding_length={decoding['min_len']},
max_decoding_length=int({decoding['max_len_a']} * (longest source + 1) + {decoding['max_len_b']}))`.
`max_input_length=0` keeps documents longer than 1,024 tokens whole.
"""
