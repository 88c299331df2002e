"""A deterministic toy translation corpus for the quickstart, tests and length benchmarks.

One source language (``eng_Toyl``, English-like words) into four toy languages, each with its
own invented lexicon and word order, so that positions matter:

* ``toya_Toyl``: subject-object-verb (verb-final);
* ``toyb_Toyl``: adjective after the noun;
* ``toyc_Toyl``: the clauses of a sentence in reverse order;
* ``toyd_Toyl``: verb-subject-object, adjective and article after the noun.

Text is generated as documents: sentences share a topic, and a later sentence may start with
``it``, which every target language translates by the noun class of the previous sentence's
subject, so some words can only be translated with context. The vocabulary is small (about 50
source and 200 target words), tokens are whitespace-separated words, so a tiny model learns its
sentences in a few hundred updates (2 layers, d 64: chrF++ 98 after 400). Source lines carry
IndicTrans2 tags (``eng_Toyl toya_Toyl ...``).

Files (``PREFIX.src`` / ``PREFIX.tgt``, one item a line):

* ``train``, ``valid``, ``test``: sentences, all languages;
* ``train-docs`` (+ ``.ids``, a document id per line): sentences of whole documents, only in
  the *document languages* (the long-context fine-tuning data, to be joined by ``make-docs``;
  absent when there are no document languages);
* ``test-doc{N}``: one document of N sentences a line, the same source documents in every
  language, N = 2, 4, ..., 32 (32 sentences are well over 8x the longest training sentence);
* ``corpus.json``: what was written, with line counts and token lengths.

Same arguments, same bytes: every random choice comes from ``random.Random`` seeded by strings.
"""
import json
import random
from dataclasses import dataclass
from pathlib import Path

from .writing import WrittenCorpus, token_lengths, write_document_pairs, write_lines, write_pairs

SOURCE = "eng_Toyl"

WORDS = {
    "noun": "dog cat bird fish horse farmer child teacher king queen river tree house boat "
            "stone apple book song garden road".split(),
    "adj": "big small red green old young happy quiet fast bright".split(),
    "verb": "sees finds likes carries follows builds paints hears takes washes".split(),
    "adv": "today slowly again often quickly".split(),
    "det": "the a".split(),
    "conj": "and but because".split(),
}
PRONOUN = "it"


@dataclass(frozen=True)
class Grammar:
    order: str                     # order of subject (S), verb (V), object (O) in a clause
    adj_after: bool = False        # noun adjective
    det_after: bool = False        # noun ... article
    reverse_clauses: bool = False  # last clause first


GRAMMARS = {
    "toya_Toyl": Grammar("SOV"),
    "toyb_Toyl": Grammar("SVO", adj_after=True),
    "toyc_Toyl": Grammar("SVO", reverse_clauses=True),
    "toyd_Toyl": Grammar("VSO", adj_after=True, det_after=True),
}
TARGETS = tuple(GRAMMARS)
DOC_SENTENCES = (2, 4, 8, 16, 32)


class ToyCorpus(WrittenCorpus):
    """A written toy corpus."""

    @property
    def doc_test_splits(self):
        return [f"test-doc{n}" for n in DOC_SENTENCES]


class Language:
    """A target language: a lexicon for every source word, noun classes and a grammar."""

    def __init__(self, tag):
        self.tag, self.grammar = tag, GRAMMARS[tag]
        rng = random.Random(f"toy-lexicon:{tag}")  # the language does not change with the seed
        consonants, vowels = "ptkmnslrvzhd", "aeiou"
        taken = {w for ws in WORDS.values() for w in ws} | {PRONOUN}
        self.lexicon = {}
        for word in [w for ws in WORDS.values() for w in ws] + [f"{PRONOUN}0", f"{PRONOUN}1"]:
            while True:
                new = "".join(rng.choice(consonants) + rng.choice(vowels)
                              for _ in range(rng.randint(2, 3)))
                if new not in taken:
                    break
            taken.add(new)
            self.lexicon[word] = new
        self.noun_class = {noun: rng.randint(0, 1) for noun in WORDS["noun"]}

    def noun_phrase(self, np):
        if np[0] == PRONOUN:
            return [self.lexicon[f"{PRONOUN}{self.noun_class[np[1]]}"]]
        det, adj, noun = (self.lexicon[w] if w else None for w in np)
        g = self.grammar
        words = [noun, adj] if g.adj_after else [adj, noun]
        words = words + [det] if g.det_after else [det] + words
        return [w for w in words if w]

    def sentence(self, clauses, conjunctions):
        rendered = []
        for subj, verb, obj, adv in clauses:
            parts = {"S": self.noun_phrase(subj), "V": [self.lexicon[verb]], "O": self.noun_phrase(obj)}
            rendered.append([w for slot in self.grammar.order for w in parts[slot]]
                            + ([self.lexicon[adv]] if adv else []))
        if self.grammar.reverse_clauses:
            rendered.reverse()
        words = rendered[0]
        for conj, clause in zip(conjunctions, rendered[1:]):
            words = words + [self.lexicon[conj]] + clause
        return " ".join(words + ["."])


def source_sentence(clauses, conjunctions):
    def np(p):
        return [PRONOUN] if p[0] == PRONOUN else [w for w in p if w]
    words = []
    for i, (subj, verb, obj, adv) in enumerate(clauses):
        if i:
            words.append(conjunctions[i - 1])
        words += np(subj) + [verb] + np(obj) + ([adv] if adv else [])
    return " ".join(words + ["."])


def sample_document(rng, n_sentences):
    """Sentences as (clauses, conjunctions); a later sentence may start with ``it`` standing for
    the subject noun of the sentence before."""
    topic = rng.sample(WORDS["noun"], 6)

    def noun_phrase():
        return (rng.choice(WORDS["det"]), rng.choice(WORDS["adj"]) if rng.random() < 0.5 else None,
                rng.choice(topic))

    document, previous_subject = [], None
    for _ in range(n_sentences):
        clauses = []
        for c in range(rng.randint(1, 2)):
            subj = noun_phrase()
            if c == 0 and previous_subject and rng.random() < 0.4:
                subj = (PRONOUN, previous_subject)
            adv = rng.choice(WORDS["adv"]) if rng.random() < 0.3 else None
            clauses.append((subj, rng.choice(WORDS["verb"]), noun_phrase(), adv))
        conjunctions = [rng.choice(WORDS["conj"]) for _ in clauses[1:]]
        first = clauses[0][0]
        previous_subject = first[1] if first[0] == PRONOUN else first[2]
        document.append((clauses, conjunctions))
    return document


def translate(document, language):
    return [(source_sentence(*s), language.sentence(*s)) for s in document]


def sentence_pairs(rng, language, count):
    """``count`` (source, target) sentences cut from documents of 1-8 sentences."""
    pairs = []
    while len(pairs) < count:
        pairs += translate(sample_document(rng, rng.randint(1, 8)), language)
    return pairs[:count]


def write_toy_corpus(outdir, seed=1, targets=TARGETS, doc_targets=TARGETS[:2], train_sentences=2000,
                     valid_sentences=50, test_sentences=100, train_documents=150, test_documents=16,
                     separator=None):
    """Write the corpus under ``outdir`` (created; existing toy files are overwritten) and return
    its :class:`ToyCorpus`. Counts are per target language. ``separator``: a symbol written
    between the sentences of the test documents on both sides (default: a space only)."""
    if separator is not None and (len(separator.split()) != 1 or separator != separator.strip()):
        raise ValueError(f"the document separator must be one symbol without spaces, not {separator!r}")
    join = " " if separator is None else f" {separator} "
    unknown = [t for t in targets if t not in GRAMMARS]
    if unknown or not targets:
        raise ValueError(f"unknown or no target languages {unknown or targets}; choose from {list(GRAMMARS)}")
    if not set(doc_targets) <= set(targets):
        raise ValueError(f"document languages {list(doc_targets)} must be among the targets {list(targets)}")
    counts = dict(train_sentences=train_sentences, valid_sentences=valid_sentences,
                  test_sentences=test_sentences, train_documents=train_documents,
                  test_documents=test_documents)
    bad = [name for name, n in counts.items() if not isinstance(n, int) or n < 1]
    if bad:
        raise ValueError(f"{', '.join(bad)} must be positive integers")
    root = Path(outdir)
    root.mkdir(parents=True, exist_ok=True)
    languages = {t: Language(t) for t in targets}
    splits = {}

    for split, n in (("train", train_sentences), ("valid", valid_sentences), ("test", test_sentences)):
        rows = []
        for tag, language in languages.items():
            rng = random.Random(f"toy:{seed}:{split}:{tag}")
            rows += [((SOURCE, tag), s, t) for s, t in sentence_pairs(rng, language, n)]
        random.Random(f"toy:{seed}:{split}:order").shuffle(rows)
        splits[split] = write_pairs(root, split, rows)

    rows, ids = [], []  # no document languages: no train-docs split
    for tag in doc_targets:
        rng = random.Random(f"toy:{seed}:train-docs:{tag}")
        for d in range(train_documents):
            for s, t in translate(sample_document(rng, rng.randint(2, 16)), languages[tag]):
                rows.append(((SOURCE, tag), s, t))
                ids.append(f"{tag}-{d:05d}")
    if rows:
        splits["train-docs"] = write_pairs(root, "train-docs", rows)
        write_lines(root / "train-docs.ids", ids)
    else:  # no stale document data from an earlier run in the same directory
        for suffix in ("src", "tgt", "ids"):
            (root / f"train-docs.{suffix}").unlink(missing_ok=True)

    for n in DOC_SENTENCES:
        rng = random.Random(f"toy:{seed}:test-doc{n}")
        documents = [sample_document(rng, n) for _ in range(test_documents)]
        rows = []
        for tag, language in languages.items():
            for document in documents:
                pairs = translate(document, language)
                rows.append(((SOURCE, tag), [s for s, _ in pairs], [t for _, t in pairs]))
        splits[f"test-doc{n}"] = write_document_pairs(root, f"test-doc{n}", rows, join)

    corpus = ToyCorpus(root, seed, tuple(targets), tuple(doc_targets), splits)
    write_manifest(corpus)
    return corpus


def pronoun_forms(tag):
    """The two words by which language ``tag`` translates ``it`` (noun class 0, class 1)."""
    lexicon = Language(tag).lexicon
    return lexicon[f"{PRONOUN}0"], lexicon[f"{PRONOUN}1"]


def pronoun_accuracy(tags, hypotheses, references, separator):
    """``(right, total)``: the context pronouns of the references (the translations of ``it``,
    whose form only the previous sentence tells) that the hypotheses translate right. Sentence by
    sentence where a hypothesis has its reference's number of sentences (split at ``separator``);
    otherwise the document's forms are counted as bags (each form right at most as often as the
    reference uses it). ``tags``: each document's target language."""
    right = total = 0
    for tag, hyp, ref in zip(tags, hypotheses, references):
        forms = pronoun_forms(tag)
        hyp_sents, ref_sents = ([s.split() for s in text.split(separator)] for text in (hyp, ref))
        if len(hyp_sents) != len(ref_sents):
            hyp_sents, ref_sents = [sum(hyp_sents, [])], [sum(ref_sents, [])]
        for h, r in zip(hyp_sents, ref_sents):
            for form in forms:
                total += r.count(form)
                right += min(r.count(form), h.count(form))
    return right, total


def write_manifest(corpus):
    manifest = {
        "source": SOURCE, "targets": list(corpus.targets), "doc_targets": list(corpus.doc_targets),
        "seed": corpus.seed, "tokenisation": "whitespace",
        "splits": {split: {"lines": n, "source_tokens": token_lengths(corpus.files(split)[0]),
                           "target_tokens": token_lengths(corpus.files(split)[1])}
                   for split, n in corpus.splits.items()},
    }
    with open(corpus.root / "corpus.json", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
