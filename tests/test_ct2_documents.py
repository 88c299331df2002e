"""``ct2_translate.translate_documents``'s window semantics, call by call, against a stand-in
translator that records what it is asked (CTranslate2 itself is not needed: the real model's
tests are in test_export_ct2.py)."""
from types import SimpleNamespace

import pytest

from fairseq_relpos.ct2 import translate as ct2_translate

SEP = "<sep>"
TAGS = ["eng_Latn", "hin_Deva"]


class Recorder:
    """Translates the last source sentence of each input by upper-casing it, after the target
    prefix, with the first end token when asked to return it; records every call."""

    def __init__(self):
        self.calls = []

    def translate_batch(self, sources, target_prefix=None, **options):
        self.calls.append(dict(options, sources=sources, target_prefix=target_prefix))
        results = []
        for i, source in enumerate(sources):
            last = ct2_translate.split_sentences(source, SEP)[1][-1]
            prefix = (target_prefix or [None] * len(sources))[i] or []
            end = [options["end_token"][0]] if options.get("return_end_token") else []
            results.append(SimpleNamespace(hypotheses=[prefix + [w.upper() for w in last] + end], scores=[0.0]))
        return results


def document(sizes, start=0):
    """Sentences of the given sizes, words numbered so that each is distinct."""
    sentences, n = [], start
    for size in sizes:
        sentences.append([f"w{n + k}" for k in range(size)])
        n += size
    return sentences


@pytest.mark.parametrize("window", [1, 2, 3, 5])
def test_each_round_decodes_the_window_with_the_kept_translations_as_prefix(window):
    decoding = ct2_translate.decoding_config(beam=2, max_len_a=1.0, max_len_b=3)
    docs = [document([2, 3, 1, 4, 2]), document([1, 2], start=50), document([3], start=80)]
    sources = [TAGS + ct2_translate.join_sentences(d, SEP) for d in docs]
    recorder = Recorder()
    result = ct2_translate.translate_documents(recorder, sources, decoding, "window", SEP, window=window)
    assert result == [[[w.upper() for w in s] for s in d] for d in docs]
    assert len(recorder.calls) == 5  # one call per round: round r of every document together
    for r, call in enumerate(recorder.calls, start=1):
        live = [d for d in docs if len(d) >= r]
        first = max(1, r - window + 1)
        expected_sources = [TAGS + ct2_translate.join_sentences(d[first - 1:r], SEP) for d in live]
        assert sorted(call["sources"]) == sorted(expected_sources)
        if first < r:  # the kept translations of the window's earlier sentences, then the separator
            expected = [ct2_translate.join_sentences([[w.upper() for w in s] for s in d[first - 1:r - 1]], SEP) + [SEP]
                        for d in live]
            assert sorted(call["target_prefix"]) == sorted(expected)
            assert sorted(call["suppress_sequences"]) == sorted([[SEP, SEP], [SEP, "</s>"]])
        else:
            assert call["target_prefix"] is None and "suppress_sequences" not in call
        assert call["end_token"] == [SEP, "</s>"] and call["return_end_token"] is True
        longest_prefix = max(len(p) for p in call["target_prefix"]) if call["target_prefix"] else 0
        longest_new = max(len(d[r - 1]) for d in live) + len(TAGS)
        assert call["max_decoding_length"] == longest_prefix + int(1.0 * (longest_new + 1) + 3)


def test_split_decodes_every_sentence_in_batches_and_skips_empty_ones():
    decoding = ct2_translate.decoding_config(beam=2)
    docs = [document([2, 3, 1]), document([1], start=50)]
    sources = [TAGS + ct2_translate.join_sentences(docs[0], SEP), TAGS + docs[1][0] + [SEP]]  # ends with an empty one
    recorder = Recorder()
    result = ct2_translate.translate_documents(recorder, sources, decoding, "split", SEP, batch_size=3)
    assert result == [[[w.upper() for w in s] for s in docs[0]], [[w.upper() for w in docs[1][0]], []]]
    assert [len(call["sources"]) for call in recorder.calls] == [3, 1]  # shortest first, 3 a batch
    assert all(source[:2] == TAGS and SEP not in source for call in recorder.calls for source in call["sources"])


def test_a_document_without_separator_is_one_sentence_and_untagged_documents_get_no_tags():
    assert ct2_translate.split_sentences(["a", "b"], SEP) == ([], [["a", "b"]])
    assert ct2_translate.split_sentences([SEP, "a", SEP], SEP) == ([], [[], ["a"], []])
    assert ct2_translate.split_sentences(TAGS + ["a", SEP, "b"], SEP) == (TAGS, [["a"], ["b"]])


@pytest.mark.parametrize("mode,window,message", [
    ("aligned", 4, "--doc-decoding aligned cannot be done by CTranslate2"),
    ("whole", 4, "--doc-decoding must be one of split, window with CTranslate2"),
    ("window", 0, "--doc-window must be an integer >= 1"),
])
def test_what_cannot_be_done_is_refused(mode, window, message):
    with pytest.raises(ValueError, match=message):
        ct2_translate.translate_documents(Recorder(), [["a"]], ct2_translate.decoding_config(), mode, SEP,
                                          window=window)
