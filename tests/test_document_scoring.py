"""Scores a user can trust (issue 26): NFKC on both sides, sentence-aligned ChrF++ of documents
(cut at separators, or again by minimum edit distance), floors from references alone, and
paired bootstrap intervals of a difference; each against an independent computation."""
import itertools
import random
import unicodedata

import numpy as np
import pytest
from sacrebleu.metrics import CHRF

from fairseq_relpos.bootstrap import bootstrap_differences, draws, paired_bootstrap
from fairseq_relpos.documents.resegment import resegment
from fairseq_relpos.documents.sentences import check_separator, split_sentences
from fairseq_relpos.floors import floors, looped_prefix, wrong_documents
from fairseq_relpos.scoring import align_sentences, aligned_score, evaluate


def chrfpp(hyps, refs):
    return CHRF(word_order=2).corpus_score(list(hyps), [list(refs)]).score


# Bengali with precomposed RRA (U+09DC) and YYA (U+09DF), as the Bible references hold them;
# NFKC (SentencePiece's normalisation, so the hypotheses') decomposes both.
BENGALI = "\u0986\u09ae\u09be\u09b0 \u09ac\u09be\u09dc\u09bf \u0993 \u09b8\u09ae\u09df \u09aa\u09dc\u09c7"


def test_nfkc_on_both_sides_scores_a_decomposed_perfect_output_100():
    hyp = unicodedata.normalize("NFKC", BENGALI)
    assert hyp != BENGALI and "\u09a1\u09bc" in hyp and "\u09af\u09bc" in hyp  # really decomposed
    normalised = evaluate([hyp], [BENGALI])
    assert normalised["overall"]["chrf++"] == 100
    assert normalised["signature"].endswith("|nfkc:yes") and normalised["normalize"] == "nfkc"
    raw = evaluate([hyp], [BENGALI], normalize=False)
    assert raw["overall"]["chrf++"] == chrfpp([hyp], [BENGALI]) < 90
    assert raw["signature"].endswith("|nfkc:no")
    aligned = align_sentences([hyp + " <s> " + hyp], [[BENGALI, BENGALI]], "<s>")
    assert aligned_score(aligned)["chrf++"] == 100
    assert aligned_score(align_sentences([hyp], [[BENGALI]], normalize=False))["chrf++"] < 90


def test_sentences_are_cut_literally_at_the_separator():
    assert split_sentences("foo bar <s> baz qux", "<s>") == ["foo bar", "baz qux"]
    assert split_sentences("foo bar<s> baz qux", "<s>") == ["foo bar", "baz qux"]  # after --post-process sentencepiece
    assert split_sentences("<s> a <s> b <s>", "<s>") == ["", "a", "b", ""]
    assert split_sentences("a <s><s> b", "<s>") == ["a", "", "b"]
    assert split_sentences("no separator here", "<s>") == ["no separator here"]
    assert split_sentences("", "<s>") == [""]
    assert split_sentences("a </s> b", "</s>") == ["a", "b"]
    for bad in ("", " <s>", "a b"):
        with pytest.raises(ValueError, match="--doc-separator .*one symbol without whitespace"):
            check_separator(bad)


def test_aligned_pairs_keep_the_separators_when_the_counts_agree_and_cut_again_otherwise():
    refs = [["a b c", "d e f"], ["g h", "", "i j"], ["k l", "m n"], ["o p"]]
    hyps = ["a b c <s> d e x",   # two sentences: kept as cut
            "g h <s> <s> i j",   # the empty sentence kept
            "k l m n",           # no separator: cut again
            "o <s> p"]           # too many: cut again
    aligned = align_sentences(hyps, refs, "<s>")
    assert aligned.hypotheses == ["a b c", "d e x", "g h", "", "i j", "k l", "m n", "o p"]
    assert aligned.references == [s for doc in refs for s in doc]
    assert aligned.documents == [0, 0, 1, 1, 1, 2, 2, 3]
    assert aligned.resegmented == [2, 3]
    report = aligned_score(aligned)
    assert report["chrf++"] == chrfpp(aligned.hypotheses, aligned.references)
    assert (report["sentences"], report["documents"], report["resegmented"]) == (8, 4, 2)
    # a separator in the wrong place is kept when the count agrees: the score shows the misplacement
    misplaced = align_sentences(["a b <s> c d e f"], [refs[0]], "<s>")
    assert misplaced.hypotheses == ["a b", "c d e f"] and misplaced.resegmented == []
    with pytest.raises(ValueError, match="2 hypothesis documents but 1 reference documents"):
        align_sentences(hyps[:2], refs[:1], "<s>")


def edit_distance(a, b):
    """Word Levenshtein distance, memoised recursion (independent of the module's table)."""
    a, b = tuple(a.split()), tuple(b.split())
    memo = {}

    def d(i, j):
        if (i, j) not in memo:
            memo[i, j] = (i + j if not i or not j else
                          min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1])))
        return memo[i, j]
    return d(len(a), len(b))


def best_by_brute_force(hyp, sentences):
    tokens = hyp.split()
    best = None
    for cuts in itertools.combinations_with_replacement(range(len(tokens) + 1), len(sentences) - 1):
        bounds = [0, *cuts, len(tokens)]
        cost = sum(edit_distance(" ".join(tokens[a:b]), s) for a, b, s in zip(bounds, bounds[1:], sentences))
        best = cost if best is None else min(best, cost)
    return best


def test_resegmenting_finds_the_least_total_edit_distance_of_every_cut():
    rng = random.Random(0)
    words = "a b c d e".split()
    for _ in range(150):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 4))]
        hyp = " ".join(rng.choice(words) for _ in range(rng.randint(0, 8)))
        segments = resegment(hyp, sentences)
        assert len(segments) == len(sentences)
        assert " ".join(segments).split() == hyp.split()  # a cut: every token once, in order
        assert sum(map(edit_distance, segments, sentences)) == best_by_brute_force(hyp, sentences), (hyp, sentences)


def test_resegmenting_a_translation_without_separators_recovers_its_sentences():
    sentences = ["the cat sat on the mat .", "it was warm .", "then the dog came in and lay down ."]
    assert resegment(" ".join(sentences), sentences) == sentences
    # words inserted at a boundary go to the sentence before it; lost words leave segments short
    assert resegment("the cat sat on the mat . and more it was warm . then the dog came", sentences) == [
        "the cat sat on the mat . and more", "it was warm .", "then the dog came"]
    assert resegment("", sentences) == ["", "", ""]
    with pytest.raises(ValueError, match="no reference sentences"):
        resegment("a b", [])


def synthetic_documents(n_docs=12, sentences=10, seed=0):
    """Documents in two languages with Zipf-like vocabularies, as real text shares frequent words."""
    rng = random.Random(seed)
    docs, languages = [], []
    for i in range(n_docs):
        lang = "xx" if i % 2 else "yy"
        vocab = [f"{lang}{w}" for w in range(300)]
        weights = [1 / (r + 1) for r in range(len(vocab))]
        docs.append([" ".join(rng.choices(vocab, weights, k=rng.randint(6, 14))) + " ." for _ in range(sentences)])
        languages.append(lang)
    return docs, languages


def test_floors_order_and_constructions():
    docs, languages = synthetic_documents()
    got = floors(docs, languages)
    assert set(got) == {"wrong_document", "prefix_0.15", "prefix_0.30", "prefix_0.63", "looped_prefix"}
    assert all(v["documents"] == len(docs) for v in got.values())
    scores = {k: v["chrf++"] for k, v in got.items()}
    assert scores["prefix_0.63"] > scores["prefix_0.30"] > scores["prefix_0.15"] > 0
    assert 0 < scores["wrong_document"] < 70  # well below a perfect translation's 100
    texts = [" ".join(d) for d in docs]
    tokens = [t.split() for t in texts]
    cut = [" ".join(t[:int(len(t) * 0.30 + 0.5)]) for t in tokens]
    assert scores["prefix_0.30"] == chrfpp(cut, texts)
    # another document of the same language, nearest in length, at this one's length
    wrong = wrong_documents(texts, languages)
    for i, text in wrong.items():
        others = [j for j in range(len(docs)) if j != i and languages[j] == languages[i]]
        nearest = min(others, key=lambda j: (abs(len(tokens[j]) - len(tokens[i])), j))
        assert len(text.split()) == len(tokens[i])
        assert text.split() == (tokens[nearest] * 2)[:len(tokens[i])]
    assert wrong_documents(["a b", "c d e"], ["xx", "yy"]) == {}  # no other document of its language


def test_looped_prefix_by_hand():
    first, second = [f"t{i}" for i in range(40)], [f"u{i}" for i in range(60)]
    # 100 tokens: the first 3 (3%), then the sentence they end in repeated up to 120 tokens
    assert looped_prefix([" ".join(first), " ".join(second)]).split() == first[:3] + (first * 3)[:117]
    got = floors([[" ".join(first)], [" ".join(first), " ".join(second)]])
    assert got["looped_prefix"]["documents"] == 1  # a one-sentence document has nothing else to loop
    assert floors([["a b c"]])["looped_prefix"] == {"chrf++": None, "documents": 0}


def system_pair(n, seed):
    """References and two noisy systems, B noisier than A."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(60)]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 15))) for _ in range(n)]

    def noisy(p):
        return [" ".join(w if rng.random() < p else rng.choice(words) for w in r.split()) for r in refs]
    return refs, noisy(0.8), noisy(0.7)


def test_bootstrap_differences_are_resampled_scores_recomputed_directly():
    refs, a, b = system_pair(30, 1)
    groups = [i // 3 for i in range(len(refs))]  # documents of three sentences, drawn together
    for unit_of in (None, groups):
        diffs, observed = bootstrap_differences(a, b, refs, unit_of, resamples=50, seed=7)
        assert observed == pytest.approx(chrfpp(a, refs) - chrfpp(b, refs), abs=1e-9)
        members = {}
        for i, g in enumerate(unit_of if unit_of else range(len(refs))):
            members.setdefault(g, []).append(i)
        units = list(members.values())
        for r, drawn in enumerate(draws(len(units), 50, 7)[:5]):
            ids = [i for u in drawn for i in units[u]]
            direct = chrfpp([a[i] for i in ids], [refs[i] for i in ids]) - chrfpp([b[i] for i in ids], [refs[i] for i in ids])
            assert diffs[r] == pytest.approx(direct, abs=1e-9)


def test_bootstrap_interval_is_seeded_and_covers_the_population_difference():
    refs, a, b = system_pair(40, 2)
    one = paired_bootstrap(a, b, refs)
    assert one == paired_bootstrap(a, b, refs) and one["seed"] == 12345 and one["resamples"] == 1000
    assert one["ci95"] != paired_bootstrap(a, b, refs, seed=1)["ci95"]
    assert one["ci95"][0] <= one["difference"] <= one["ci95"][1]
    assert paired_bootstrap(a, a, refs)["ci95"] == [0.0, 0.0]
    # samples of 60 segments from a population of 1,200: the interval holds the population's
    # difference about 95% of the time
    refs, a, b = system_pair(1200, 3)
    truth = chrfpp(a, refs) - chrfpp(b, refs)
    rng = random.Random(4)
    covered = 0
    for trial in range(20):
        ids = rng.sample(range(len(refs)), 60)
        low, high = paired_bootstrap([a[i] for i in ids], [b[i] for i in ids], [refs[i] for i in ids],
                                     seed=trial)["ci95"]
        covered += low <= truth <= high
    assert covered >= 16, covered
    with pytest.raises(ValueError, match="one hypothesis of each system per reference"):
        paired_bootstrap(a[:3], b[:2], refs[:3])


def test_bootstrap_resamples_as_sacrebleus_paired_test():
    """Against a B that scores 0 on every resample, each difference is A's resampled score, whose
    mean sacrebleu's own paired bootstrap (same seed, same draws) reports."""
    from sacrebleu.significance import _paired_bs_test
    refs, a, _ = system_pair(50, 5)
    chrf = CHRF(word_order=2)
    nothing = [""] * len(refs)
    baseline = {"chrf": (chrf._extract_corpus_statistics(nothing, [refs]), chrf.corpus_score(nothing, [refs]))}
    _, results = _paired_bs_test(baseline, "a", a, [refs], {"chrf": chrf}, n_samples=1000, seed=12345)
    diffs, _ = bootstrap_differences(a, nothing, refs)
    assert diffs.mean() == pytest.approx(results["chrf"].mean, abs=1e-3)
    assert (draws(17) == np.random.default_rng(12345).choice(17, size=(1000, 17), replace=True)).all()
