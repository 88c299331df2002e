"""make-docs: budgets, order, every sentence exactly once, tags once, sidecar, streaming, errors."""
import random
import tracemalloc

import pytest

from fairseq_relpos.cli import main as cli
from fairseq_relpos.documents.tags import split_tags
from fairseq_relpos.documents.make_docs import make_documents

PAIRS = [("eng_Latn", "hin_Deva"), ("eng_Latn", "tam_Taml"), ("eng_Latn", "mar_Deva")]


def corpus(root, n_docs=40, seed=0, blank_lines=False):
    """Tagged sentences 's<line>' of 1-12 words in documents of 1-9 sentences; returns
    (prefix, ids path, {line: (tags, src text, tgt text)})."""
    rng = random.Random(seed)
    src, tgt, ids, truth = [], [], [], {}
    for d in range(n_docs):
        tags = PAIRS[d % len(PAIRS)]
        for _ in range(rng.randint(1, 9)):
            n = len(src) + 1
            words = [f"s{n}"] + [f"w{rng.randrange(50)}" for _ in range(rng.randint(0, 11))]
            truth[n] = (tags, " ".join(words), " ".join(w.upper() for w in words))
            src.append(" ".join(tags) + " " + truth[n][1])
            tgt.append(truth[n][2])
            ids.append(f"doc{d}")
        if blank_lines and d < n_docs - 1:
            src.append(""), tgt.append(""), ids.append("")
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in (("c.src", src), ("c.tgt", tgt), ("c.ids", ids)):
        (root / name).write_text("".join(line + "\n" for line in lines))
    return root / "c", root / "c.ids", truth


def run(prefix, out, **options):
    return make_documents(f"{prefix}.src", f"{prefix}.tgt", f"{out}.src", f"{out}.tgt", f"{out}.lines", **options)


def read_output(out):
    src = open(f"{out}.src").read().splitlines()
    tgt = open(f"{out}.tgt").read().splitlines()
    lines = [[int(n) for n in line.split()] for line in open(f"{out}.lines")]
    assert len(src) == len(tgt) == len(lines)
    return src, tgt, lines


def check(out, truth, budget, ids=None, overlap=0):
    src, tgt, lines = read_output(out)
    for s, t, numbers in zip(src, tgt, lines):
        tags, text = split_tags(s)
        assert tags == truth[numbers[0]][0]
        assert not any(w.endswith(("_Deva", "_Taml", "_Latn")) for w in text.split())  # tags once
        assert text == " ".join(truth[n][1] for n in numbers)
        assert t == " ".join(truth[n][2] for n in numbers)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # consecutive, in order
        if len(numbers) > 1:
            assert max(len(s.split()), len(t.split())) <= budget
            if ids is not None:
                assert len({ids[n - 1] for n in numbers}) == 1  # never across documents
    flat = [n for numbers in lines for n in numbers]
    if overlap == 0:
        assert flat == sorted(truth)  # every sentence once, in order
    else:
        assert sorted(set(flat)) == sorted(truth)
    return src, tgt, lines


@pytest.mark.parametrize("budget", [8, 20, 45])
def test_budget_order_no_loss_tags_once_ids(tmp_path, budget):
    prefix, ids_path, truth = corpus(tmp_path)
    summary = run(prefix, tmp_path / "out", budget=budget, ids_path=ids_path)
    ids = open(ids_path).read().splitlines()
    src, _, lines = check(tmp_path / "out", truth, budget, ids)
    assert summary.sentences == summary.sentences_out == len(truth)
    assert summary.documents_out == len(src) and summary.documents_in == 40
    singles_over = sum(1 for s, numbers in zip(src, lines) if len(numbers) == 1 and len(s.split()) > budget)
    assert summary.over_budget == singles_over
    assert (singles_over > 0) == (budget == 8)
    assert summary.max_tokens <= budget or singles_over


def test_greedy_fill(tmp_path):
    prefix, ids_path, truth = corpus(tmp_path)
    ids = open(ids_path).read().splitlines()
    run(prefix, tmp_path / "out", budget=30, ids_path=ids_path)
    _, _, lines = check(tmp_path / "out", truth, 30, ids)
    for a, b in zip(lines, lines[1:]):  # the next sentence of the same document did not fit
        nxt = b[0]
        if ids[nxt - 1] == ids[a[-1] - 1]:
            words = 2 + sum(len(truth[n][1].split()) for n in a + [nxt])
            assert words > 30


def test_blank_lines_delimit_documents_like_an_ids_file(tmp_path):
    prefix, ids_path, truth = corpus(tmp_path / "a", blank_lines=True)
    run(prefix, tmp_path / "a" / "out", budget=25)
    ids = open(ids_path).read().splitlines()
    src, tgt, lines = read_output(tmp_path / "a" / "out")
    for numbers in lines:
        assert len({ids[n - 1] for n in numbers}) == 1
    assert sorted(n for numbers in lines for n in numbers) == sorted(truth)


def test_overlap_repeats_only_what_is_declared(tmp_path):
    prefix, ids_path, truth = corpus(tmp_path)
    summary = run(prefix, tmp_path / "out", budget=30, ids_path=ids_path, overlap=1)
    _, _, lines = check(tmp_path / "out", truth, 30, overlap=1)
    flat = [n for numbers in lines for n in numbers]
    assert summary.repeated == len(flat) - len(truth) > 0
    for a, b in zip(lines, lines[1:]):
        assert b[0] in (a[-1], a[-1] + 1)  # either shares the last sentence or starts after it
        assert not set(a) >= set(b)


def test_pairs_filter_and_random_budgets(tmp_path):
    prefix, ids_path, truth = corpus(tmp_path)
    summary = run(prefix, tmp_path / "out", budget=40, min_budget=10, seed=3, ids_path=ids_path,
                  pairs=["tam_Taml", "eng_Latn-mar_Deva"])
    src, _, lines = read_output(tmp_path / "out")
    kept = sorted(n for n, (tags, _, _) in truth.items() if tags[1] != "hin_Deva")
    assert sorted(n for numbers in lines for n in numbers) == kept
    assert summary.filtered == len(truth) - len(kept)
    assert set(summary.by_pair) == {"eng_Latn-tam_Taml", "eng_Latn-mar_Deva"}
    again = run(prefix, tmp_path / "again", budget=40, min_budget=10, seed=3, ids_path=ids_path,
                pairs=["tam_Taml", "eng_Latn-mar_Deva"])
    assert open(tmp_path / "again.lines").read() == open(tmp_path / "out.lines").read()
    assert again.documents_out == summary.documents_out
    run(prefix, tmp_path / "other", budget=40, min_budget=10, seed=4, ids_path=ids_path)
    assert open(tmp_path / "other.lines").read() != open(tmp_path / "out.lines").read()


def test_sentencepiece_counts(tmp_path):
    import sentencepiece

    prefix, ids_path, truth = corpus(tmp_path)
    text = tmp_path / "spm.txt"
    text.write_text("".join(t[1] + "\n" + t[2] + "\n" for t in truth.values()))
    sentencepiece.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / "m"), vocab_size=60,
                                             num_threads=1, minloglevel=2, hard_vocab_limit=False)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "m.model"))
    pieces = run(prefix, tmp_path / "out", budget=50, ids_path=ids_path, spm_model=tmp_path / "m.model")
    words = run(prefix, tmp_path / "words", budget=50, ids_path=ids_path)
    assert pieces.documents_out > words.documents_out
    _, _, lines = check(tmp_path / "out", truth, 50, open(ids_path).read().splitlines())
    for numbers in lines:
        if len(numbers) > 1:  # tags count one each; pieces are counted per sentence
            assert 2 + sum(len(sp.encode(truth[n][1])) for n in numbers) <= 50
            assert sum(len(sp.encode(truth[n][2])) for n in numbers) <= 50


def test_streams_in_constant_memory(tmp_path):
    peaks = []
    for n_docs in (300, 2400):
        prefix, ids_path, _ = corpus(tmp_path / str(n_docs), n_docs=n_docs)
        tracemalloc.start()
        run(prefix, tmp_path / str(n_docs) / "out", budget=60, ids_path=ids_path)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0] + 200_000, peaks  # 8x the input, about the same peak


def test_bad_input_is_an_error_and_writes_nothing(tmp_path):
    prefix, ids_path, _ = corpus(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="budget"):
        run(prefix, out, budget=0)
    with pytest.raises(FileNotFoundError):
        run(tmp_path / "missing", out, budget=10)
    lines = open(f"{prefix}.tgt").read().splitlines()
    (tmp_path / "short.src").write_text(open(f"{prefix}.src").read())
    (tmp_path / "short.tgt").write_text("".join(line + "\n" for line in lines[:-1]))
    with pytest.raises(ValueError, match="line counts differ"):
        run(tmp_path / "short", out, budget=10)
    (tmp_path / "untagged.src").write_text("a b c\n")
    (tmp_path / "untagged.tgt").write_text("A B C\n")
    with pytest.raises(ValueError, match="--no-tags"):
        run(tmp_path / "untagged", out, budget=10)
    run(tmp_path / "untagged", out, budget=10, tagged=False)
    assert open(f"{out}.src").read() == "a b c\n"
    (tmp_path / "half.src").write_text("eng_Latn hin_Deva a\n\neng_Latn hin_Deva b\n")
    (tmp_path / "half.tgt").write_text("A\nX\nB\n")
    with pytest.raises(ValueError, match="line 2"):
        run(tmp_path / "half", tmp_path / "none", budget=10)
    with pytest.raises(ValueError, match="matched no sentence"):
        run(prefix, tmp_path / "none", budget=10, pairs=["xyz_Latn"])
    assert not list(tmp_path.glob("none*"))


def test_cli_summary(tmp_path, capsys):
    prefix, ids_path, truth = corpus(tmp_path)
    assert cli.main(["make-docs", str(prefix), str(tmp_path / "out"), "--budget", "30", "--ids", str(ids_path)]) == 0
    out = capsys.readouterr().out
    assert f"read {len(truth)} sentences in 40 documents" in out and "eng_Latn-tam_Taml" in out
    assert cli.main(["make-docs", str(prefix), str(tmp_path / "out"), "--budget", "-1"]) == 2
    assert cli.main(["make-docs", str(prefix), str(prefix), "--budget", "5"]) == 2
    assert "error:" in capsys.readouterr().err


def _refused(capsys, argv, folder):
    """cli.main refuses with one line, exit 2, and leaves ``folder`` as it was."""
    before = sorted(p.name for p in folder.iterdir())
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error:" in err, err
    assert sorted(p.name for p in folder.iterdir()) == before
    return err


def test_a_byte_that_is_not_utf8_names_file_and_line(tmp_path, capsys):
    prefix, _, _ = corpus(tmp_path / "in")
    data = open(f"{prefix}.tgt", "rb").read().split(b"\n")
    data[4] = b"caf\xe9 " + data[4]  # latin-1, not UTF-8, on line 5
    open(f"{prefix}.tgt", "wb").write(b"\n".join(data))
    err = _refused(capsys, ["make-docs", prefix, tmp_path / "out", "--budget", 20], tmp_path)
    assert f"{prefix}.tgt line 5 is not UTF-8" in err and "0xe9" in err


def test_a_separator_with_a_line_break_is_refused(tmp_path, capsys):
    prefix, _, _ = corpus(tmp_path / "in")
    for separator in ("\n", " \r "):
        err = _refused(capsys, ["make-docs", prefix, tmp_path / "out", "--budget", 20, "--separator", separator],
                       tmp_path)
        assert "--separator" in err


def test_outputs_that_cannot_be_written_are_refused_before_anything_is(tmp_path, capsys):
    prefix, _, _ = corpus(tmp_path / "in")
    (tmp_path / "a_file").write_text("x\n")
    err = _refused(capsys, ["make-docs", prefix, tmp_path / "a_file" / "out", "--budget", 20], tmp_path)
    assert "a_file is a file, not a folder" in err
    (tmp_path / "out.tgt").mkdir()  # the second output is a directory: not even OUT.src is written
    err = _refused(capsys, ["make-docs", prefix, tmp_path / "out", "--budget", 20], tmp_path)
    assert "out.tgt is a directory" in err
    assert list((tmp_path / "out.tgt").iterdir()) == []
