"""The toy corpus: deterministic, tagged, word orders that need positions, long document tests."""
import json

import pytest

from fairseq_relpos.cli import main as cli
from fairseq_relpos.corpora import toy as toydata
from fairseq_relpos.corpora.writing import train_sentencepiece
from fairseq_relpos.documents.tags import split_tags

SMALL = dict(train_sentences=120, valid_sentences=10, test_sentences=10, train_documents=6, test_documents=3)


def read(path):
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return toydata.write_toy_corpus(tmp_path_factory.mktemp("toy") / "a", seed=3, **SMALL)


def test_same_seed_same_bytes_other_seed_other_text(corpus, tmp_path):
    again = toydata.write_toy_corpus(tmp_path / "b", seed=3, **SMALL)
    other = toydata.write_toy_corpus(tmp_path / "c", seed=4, **SMALL)
    names = sorted(p.name for p in corpus.root.iterdir())
    assert names == sorted(p.name for p in again.root.iterdir())
    for name in names:
        assert (corpus.root / name).read_bytes() == (again.root / name).read_bytes(), name
    assert (corpus.root / "train.src").read_bytes() != (other.root / "train.src").read_bytes()


def test_splits_are_aligned_tagged_and_small_vocabulary(corpus):
    for split, n in corpus.splits.items():
        src, tgt = (read(p) for p in corpus.files(split))
        assert len(src) == len(tgt) == n, split
        for line in src:
            tags, text = split_tags(line)
            assert tags[0] == toydata.SOURCE and tags[1] in corpus.targets and text
            assert "_Toyl" not in text  # tags once, at the start
        assert not any("_Toyl" in line for line in tgt)
    train_src, train_tgt = (read(p) for p in corpus.files("train"))
    assert len({w for line in train_src for w in split_tags(line)[1].split()}) < 60
    assert len({w for line in train_tgt for w in line.split()}) < 260
    assert {split_tags(line)[0][1] for line in train_src} == set(toydata.TARGETS)


def test_document_training_data_only_in_document_languages(corpus):
    src = read(corpus.files("train-docs")[0])
    ids = read(corpus.root / "train-docs.ids")
    assert len(ids) == len(src)
    assert {split_tags(line)[0][1] for line in src} == set(corpus.doc_targets) == set(toydata.TARGETS[:2])
    for doc_id, line in zip(ids, src):
        assert doc_id.startswith(split_tags(line)[0][1])


def test_document_tests_carry_their_target_sentences(corpus):
    """``SPLIT.tgt-sentences`` and ``SPLIT.lines`` give each test document's sentences (for
    scoring sentence by sentence): joined, they are the document; there are N of them."""
    from fairseq_relpos.documents.sentences import read_sentence_documents
    for n in toydata.DOC_SENTENCES:
        split = f"test-doc{n}"
        documents = read_sentence_documents(corpus.root / f"{split}.tgt-sentences", corpus.root / f"{split}.lines")
        assert [" ".join(d) for d in documents] == read(corpus.files(split)[1])
        assert {len(d) for d in documents} == {n}
        assert all(s.endswith(" .") and " . " not in s for d in documents for s in d)


def test_document_tests_grow_past_eight_times_the_longest_training_sentence(corpus):
    longest = max(len(line.split()) for line in read(corpus.files("train")[0]))
    longest_doc = {n: max(len(line.split()) for line in read(corpus.files(f"test-doc{n}")[0]))
                   for n in toydata.DOC_SENTENCES}
    assert list(longest_doc.values()) == sorted(longest_doc.values())
    assert longest_doc[toydata.DOC_SENTENCES[-1]] >= 8 * longest
    for n in toydata.DOC_SENTENCES:  # the same source documents in every language
        texts = [split_tags(line)[1] for line in read(corpus.files(f"test-doc{n}")[0])]
        assert len(set(texts)) == len(texts) // len(corpus.targets)
        assert all(t.count(" . ") + 1 == n for t in texts)
    manifest = json.loads((corpus.root / "corpus.json").read_text())
    assert manifest["splits"]["train"]["lines"] == corpus.splits["train"]
    assert manifest["doc_targets"] == list(corpus.doc_targets)


def test_word_orders_and_context_dependent_pronoun():
    def np(noun, adj=None):
        return ("the", adj, noun)
    clauses = [(np("dog", "big"), "sees", np("cat"), None), (np("king"), "builds", np("house"), "today")]
    assert toydata.source_sentence(clauses, ["and"]) == "the big dog sees the cat and the king builds the house today ."
    lex = {}
    for tag in toydata.TARGETS:
        language = toydata.Language(tag)
        lex[tag] = language.lexicon
        out = language.sentence(clauses, ["and"]).split()
        t = language.lexicon
        if tag == "toya_Toyl":  # verb-final
            assert out[:5] == [t["the"], t["big"], t["dog"], t["the"], t["cat"]] and out[5] == t["sees"]
        if tag == "toyb_Toyl":  # adjective after noun
            assert out[:3] == [t["the"], t["dog"], t["big"]]
        if tag == "toyc_Toyl":  # clauses reversed
            assert out[:4] == [t["the"], t["king"], t["builds"], t["the"]]
        if tag == "toyd_Toyl":  # verb first, article and adjective after the noun
            assert out[:4] == [t["sees"], t["dog"], t["big"], t["the"]]
        pronoun = {tuple(language.noun_phrase((toydata.PRONOUN, noun))) for noun in toydata.WORDS["noun"]}
        assert len(pronoun) == 2  # 'it' needs the antecedent's noun class
    assert lex["toya_Toyl"] != lex["toyb_Toyl"]


def test_cli_and_bad_arguments(tmp_path, capsys):
    assert cli.main(["toy-corpus", str(tmp_path / "t"), "--train-sentences", "20", "--doc-targets", "toyc_Toyl"]) == 0
    out = capsys.readouterr().out
    assert "train.{src,tgt}\t80 lines" in out and "corpus.json" in out
    assert cli.main(["toy-corpus", str(tmp_path / "t"), "--train-sentences", "5", "--doc-targets"]) == 0
    assert not (tmp_path / "t" / "train-docs.src").exists()  # none left from the first run
    assert cli.main(["toy-corpus", str(tmp_path / "u"), "--targets", "xx_Toyl"]) == 2
    assert cli.main(["toy-corpus", str(tmp_path / "u"), "--targets", "toya_Toyl", "--doc-targets", "toyb_Toyl"]) == 2
    assert cli.main(["toy-corpus", str(tmp_path / "u"), "--train-sentences", "0"]) == 2
    assert "error:" in capsys.readouterr().err


def test_sentencepiece_keeps_tags_and_is_deterministic(corpus, tmp_path):
    import sentencepiece

    model = train_sentencepiece(corpus, 120)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(model))
    raw, encoded = read(corpus.files("test")[0]), read(corpus.root / "spm" / "test.src")
    assert len(raw) == len(encoded)
    for a, b in zip(raw, encoded):
        tags, text = split_tags(b)
        assert tags == split_tags(a)[0]
        assert sp.decode(text.split()) == split_tags(a)[1]
    again = toydata.write_toy_corpus(tmp_path / "b", seed=3, **SMALL)
    other = sentencepiece.SentencePieceProcessor(model_file=str(train_sentencepiece(again, 120)))
    assert [other.id_to_piece(i) for i in range(len(other))] == [sp.id_to_piece(i) for i in range(len(sp))]
    for path in (corpus.root / "spm").iterdir():  # the model file names its directory; the pieces agree
        assert path.read_bytes() == (again.root / "spm" / path.name).read_bytes()


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x\n")
    for outdir in (tmp_path / "f", tmp_path / "f" / "toy"):
        assert cli.main(["toy-corpus", str(outdir), "--train-sentences", "5"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "f is a file, not a folder" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
