"""evaluate: the numbers are sacrebleu's own ChrF++; fairseq-generate output is read whole or refused."""
import json
import logging
import random
import subprocess
import sys
from types import SimpleNamespace

import pytest
from sacrebleu.metrics import CHRF

from fairseq_relpos.cli import main as cli
from fairseq_relpos.scoring import evaluate, inputs_read, inputs_skipped, length_bucket, read_generate
from fairseq_relpos.tasks import over_long_inputs


def sample(n=40, seed=0):
    rng = random.Random(seed)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    refs = [" ".join(rng.choice(words) for _ in range(rng.choice([5, 20, 40, 90]))) for _ in range(n)]
    hyps = [" ".join(w if rng.random() < 0.7 else rng.choice(words) for w in r.split()[: rng.randint(3, 100)])
            for r in refs]
    srcs = [f"eng_Latn {'hin_Deva' if i % 3 else 'tam_Taml'} " + r.upper() for i, r in enumerate(refs)]
    return srcs, hyps, refs


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def chrfpp(hyps, refs):
    return CHRF(word_order=2).corpus_score(hyps, [refs]).score


def test_scores_are_sacrebleus_own(tmp_path, capsys):
    srcs, hyps, refs = sample()
    report = evaluate(hyps, refs, srcs)
    assert report["overall"]["chrf++"] == chrfpp(hyps, refs)
    assert report["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no")
    for pair, tgt in (("eng_Latn-hin_Deva", "hin_Deva"), ("eng_Latn-tam_Taml", "tam_Taml")):
        idx = [i for i, s in enumerate(srcs) if s.split()[1] == tgt]
        assert report["by_pair"][pair]["chrf++"] == chrfpp([hyps[i] for i in idx], [refs[i] for i in idx])
    assert sum(v["segments"] for v in report["by_length"].values()) == len(refs)
    assert list(report["by_length"]) == ["<=16", "17-32", "33-64", "65-128"]

    paths = [write(tmp_path / name, lines) for name, lines in (("h", hyps), ("r", refs), ("s", srcs))]
    assert cli.main(["evaluate", "--hyp", str(paths[0]), "--ref", str(paths[1]), "--src", str(paths[2]),
                     "--json", str(tmp_path / "out.json")]) == 0
    printed = capsys.readouterr().out
    assert "nw:2" in printed and "eng_Latn-tam_Taml" in printed
    assert json.loads((tmp_path / "out.json").read_text())["overall"]["chrf++"] == chrfpp(hyps, refs)
    cmd = [sys.executable, "-m", "sacrebleu", str(paths[1]), "-i", str(paths[0]), "-m", "chrf",
           "--chrf-word-order", "2", "-b", "-w", "6"]
    assert float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout) == round(chrfpp(hyps, refs), 6)


def generate_output(srcs, hyps, refs, order, detok=True, drop=()):
    lines = []
    for i in order:
        if i in drop:
            continue
        lines += [f"S-{i}\t{srcs[i]}", f"T-{i}\t{refs[i]}", f"H-{i}\t-0.5\t{hyps[i]} @@"]
        if detok:
            lines.append(f"D-{i}\t-0.5\t{hyps[i]}")
        lines += [f"P-{i}\t-0.1 -0.2", f"H-{i}\t-0.9\tsecond best"]  # n-best: the first is kept
    return ["2026-01-01 | INFO | fairseq_cli.generate | loaded", *lines, "Generate test with beam=4: BLEU4 = 1.0"]


def test_generate_output_in_any_order_equals_plain_files(tmp_path):
    srcs, hyps, refs = sample()
    order = list(range(len(refs)))
    random.Random(1).shuffle(order)
    path = write(tmp_path / "gen.out", generate_output(srcs, hyps, refs, order))
    assert read_generate(path) == (srcs, hyps, refs)
    got_srcs, got_hyps, got_refs = read_generate(path)
    assert evaluate(got_hyps, got_refs, got_srcs) == evaluate(hyps, refs, srcs)
    no_detok = write(tmp_path / "h.out", generate_output(srcs, hyps, refs, order, detok=False))
    assert read_generate(no_detok)[1] == [h + " @@" for h in hyps]


def generate_log(n, path="/data/bin", split="test"):
    """fairseq-generate's log lines (its stderr) about the --gen-subset it read."""
    return [f"2026-01-01 00:00:00 | INFO | fairseq.data.data_utils | loaded {n:,} examples from: {path}/{split}.src-tgt.{side}"
            for side in ("src", "tgt")] + [f"2026-01-01 00:00:00 | INFO | fairseq.tasks.translation | {path} {split} src-tgt {n} examples"]


def default_format_log(n, path="/data/bin", split="test"):
    """The same in Python's default log format (when logging was configured before fairseq-generate did)."""
    return [f"INFO:fairseq.data.data_utils:loaded {n:,} examples from: {path}/{split}.src-tgt.{side}" for side in ("src", "tgt")]


def test_lost_segments_are_errors(tmp_path, capsys):
    srcs, hyps, refs = sample()
    order = range(len(refs))
    gap = write(tmp_path / "gap.out", generate_output(srcs, hyps, refs, order, drop={3, 7}))
    with pytest.raises(ValueError, match=r"2 id\(s\) have no output at all: \[3, 7\]; the output is incomplete"):
        read_generate(gap)
    # A lost last id leaves no trace in the output itself: the references or fairseq-generate's log count it.
    tail_lines = generate_output(srcs, hyps, refs, order, drop={len(refs) - 1})
    tail = write(tmp_path / "tail.out", tail_lines)
    ref = write(tmp_path / "ref", refs)
    log = write(tmp_path / "gen.log", generate_log(len(refs)))
    assert cli.main(["evaluate", "--generate", str(tail), "--ref", str(ref)]) == 2
    assert "hypotheses but" in capsys.readouterr().err
    missing = f"has output for {len(refs) - 1} inputs, but fairseq-generate read {len(refs)}"
    assert cli.main(["evaluate", "--generate", str(tail), "--log", str(log)]) == 2
    err = capsys.readouterr().err
    assert missing in err and "the last 1 are missing" in err
    both = write(tmp_path / "both.out", generate_log(len(refs)) + tail_lines)  # fairseq-generate ... > FILE 2>&1
    assert cli.main(["evaluate", "--generate", str(both)]) == 2
    assert missing in capsys.readouterr().err
    assert cli.main(["evaluate", "--generate", str(tail)]) == 2  # nothing to count against
    assert "does not say how many inputs fairseq-generate read" in capsys.readouterr().err
    assert cli.main(["evaluate", "--generate", str(tail), "--ref", str(ref), "--log", str(tail)]) == 2  # not a log
    assert "does not say how many inputs" in capsys.readouterr().err
    whole = write(tmp_path / "whole.out", generate_output(srcs, hyps, refs, order))
    assert cli.main(["evaluate", "--generate", str(whole), "--log", str(log)]) == 0
    assert cli.main(["evaluate", "--generate", str(whole), "--log", str(log), "--ref", str(ref)]) == 0
    assert cli.main(["evaluate", "--hyp", str(ref), "--ref", str(ref), "--log", str(log)]) == 2
    assert "--log is fairseq-generate's log: it goes with --generate" in capsys.readouterr().err
    empty = write(tmp_path / "empty.out", ["2026 | INFO | nothing"])
    with pytest.raises(ValueError, match="not fairseq-generate output, or a run that decoded nothing"):
        read_generate(empty)
    with pytest.raises(ValueError, match="hypotheses but"):
        evaluate(hyps[:-1], refs)
    assert cli.main(["evaluate", "--hyp", str(ref)]) == 2
    assert cli.main(["evaluate", "--hyp", str(ref), "--ref", str(tmp_path / "missing")]) == 2


class _Split:
    """What DocumentBatchingMixin reads of a dataset: sizes, and fairseq's filter by size."""

    def __init__(self, sizes):
        self.sizes = sizes

    def size(self, i):
        return self.sizes[i]

    def filter_indices_by_size(self, indices, max_positions):
        return ([i for i in indices if self.sizes[i] <= max_positions],
                [i for i in indices if self.sizes[i] > max_positions])


def plugin_skip_line(caplog, sizes, max_positions):
    """The warning translation_doc logs when it skips, in fairseq's log format."""
    task = SimpleNamespace(cfg=SimpleNamespace(train_subset="train"), datasets={})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=over_long_inputs.__name__):
        over_long_inputs.DocumentBatchingMixin.filter_indices_by_size(
            task, list(range(len(sizes))), _Split(sizes), max_positions, ignore_invalid_inputs=True)
    (record,) = caplog.records
    return f"2026-01-01 00:00:00 | WARNING | {record.name} | {record.getMessage()}"


def stock_skip_line(count):
    """fairseq's own (FairseqTask.filter_indices_by_size), as --task translation logs it."""
    return (f"2026-01-01 00:00:00 | WARNING | fairseq.tasks.fairseq_task | {count:,} samples have invalid sizes "
            f"and will be skipped, max_positions=(30, 30), first few sample ids=[38, 39]")


@pytest.mark.parametrize("task", ["translation_doc", "translation"])
def test_inputs_skipped_as_too_long_are_named_as_the_cause(tmp_path, capsys, caplog, task):
    """--skip-invalid-size-inputs-valid-test skipping the last ids leaves no trace in the output:
    the log says why they are missing, and evaluate says so instead of "a run cut short"."""
    srcs, hyps, refs = sample()
    n = len(refs)
    skip = plugin_skip_line(caplog, [10] * (n - 2) + [40, 50], 30) if task == "translation_doc" else stock_skip_line(2)
    assert inputs_skipped(write(tmp_path / "skip.log", [skip])) == 2
    out = write(tmp_path / "gen.out", generate_output(srcs, hyps, refs, range(n), drop={n - 2, n - 1}))
    log = write(tmp_path / "gen.log", generate_log(n) + [skip])
    assert cli.main(["evaluate", "--generate", str(out), "--log", str(log)]) == 2
    err = capsys.readouterr().err
    assert "the last 2 are missing (the log says 2 input(s) were skipped as longer than max positions" in err
    assert "cut short" not in err
    # one skipped, one more lost: both causes
    out = write(tmp_path / "gen.out", generate_output(srcs, hyps, refs, range(n), drop={n - 3, n - 2, n - 1}))
    assert cli.main(["evaluate", "--generate", str(out), "--log", str(log)]) == 2
    err = capsys.readouterr().err
    assert "the last 3 are missing (the log says 2 input(s)" in err and "the other 1: a run cut short" in err
    log = write(tmp_path / "plain.log", generate_log(n))
    assert inputs_skipped(log) == 0
    assert cli.main(["evaluate", "--generate", str(out), "--log", str(log)]) == 2
    assert "the last 3 are missing (a run cut short" in capsys.readouterr().err


def test_the_log_counts_the_inputs_of_one_run(tmp_path):
    assert inputs_read(write(tmp_path / "big.log", generate_log(1234))) == 1234  # fairseq writes 1,234
    assert inputs_read(write(tmp_path / "default.log", default_format_log(17))) == 17
    assert inputs_read(write(tmp_path / "none.log", ["2026 | INFO | fairseq_cli.generate | loaded"])) is None
    two_runs = write(tmp_path / "two.log", generate_log(5) + generate_log(7, split="test1"))
    with pytest.raises(ValueError, match=r"logs datasets of \[5, 7\] examples"):
        inputs_read(two_runs)


def test_length_buckets():
    assert [length_bucket(n) for n in (0, 16, 17, 32, 33, 64, 65, 1000)] == [
        "<=16", "<=16", "17-32", "17-32", "33-64", "33-64", "65-128", "513-1024"]


def test_references_from_a_file_need_no_t_lines(tmp_path):
    srcs, hyps, refs = sample()
    lines = [line for line in generate_output(srcs, hyps, refs, range(len(refs))) if not line.startswith("T-")]
    path = write(tmp_path / "gen.out", lines)
    with pytest.raises(ValueError, match="no reference"):
        read_generate(path)
    assert cli.main(["evaluate", "--generate", str(path), "--ref", str(write(tmp_path / "ref", refs)),
                     "--json", str(tmp_path / "j")]) == 0
    assert json.loads((tmp_path / "j").read_text())["overall"]["chrf++"] == chrfpp(hyps, refs)


def test_a_byte_that_is_not_utf8_names_file_and_line(tmp_path, capsys):
    srcs, hyps, refs = sample()
    ref = write(tmp_path / "ref", refs)
    hyp = tmp_path / "hyp"
    hyp.write_bytes("".join(h + "\n" for h in hyps[:6]).encode() + b"\xff\xfe\n" + b"x\n" * (len(refs) - 7))
    assert cli.main(["evaluate", "--hyp", str(hyp), "--ref", str(ref)]) == 2
    captured = capsys.readouterr()
    assert f"{hyp} line 7 is not UTF-8" in captured.err and captured.out == ""


@pytest.mark.parametrize("where", ["directory", "under_a_file"])
def test_json_that_cannot_be_written_fails_before_the_table(tmp_path, capsys, where):
    srcs, hyps, refs = sample()
    hyp, ref = write(tmp_path / "hyp", hyps), write(tmp_path / "ref", refs)
    target = tmp_path / "scores.json"
    if where == "directory":
        target.mkdir()
    else:
        (tmp_path / "f").write_text("x\n")
        target = tmp_path / "f" / "scores.json"
    before = sorted(tmp_path.rglob("*"))
    assert cli.main(["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--json", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured
    assert sorted(tmp_path.rglob("*")) == before


def documents_sample(n=12, seed=3):
    """Reference documents of 1-5 sentences and hypotheses: half keep the separator between
    sentences (some words wrong), half come without any (the right words, to be cut again)."""
    rng = random.Random(seed)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    ref_docs = [[" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + " ." for _ in range(rng.randint(1, 5))]
                for _ in range(n)]
    hyp_sents = [[" ".join(w if rng.random() < 0.8 else rng.choice(words) for w in s.split()) for s in doc]
                 for doc in ref_docs]
    hyps = [" <s> ".join(s) if i % 2 else " ".join(ref_docs[i]) for i, s in enumerate(hyp_sents)]
    expected = [s for i, doc in enumerate(hyp_sents) for s in (doc if i % 2 else ref_docs[i])]
    return ref_docs, hyps, expected


def test_documents_are_scored_sentence_by_sentence(tmp_path, capsys):
    ref_docs, hyps, expected = documents_sample()
    refs = [" <s> ".join(doc) for doc in ref_docs]
    srcs = [f"eng_Latn hin_Deva document {i}" for i in range(len(refs))]
    gen = write(tmp_path / "gen.out", generate_output(srcs, hyps, refs, range(len(refs))))
    log = write(tmp_path / "gen.log", generate_log(len(refs)))
    assert cli.main(["evaluate", "--generate", str(gen), "--log", str(log), "--doc-separator", "<s>",
                     "--json", str(tmp_path / "t.json")]) == 0
    assert "sentence-aligned: chrF++" in capsys.readouterr().out
    report = json.loads((tmp_path / "t.json").read_text())
    ref_sentences = [s for doc in ref_docs for s in doc]
    assert report["aligned"]["chrf++"] == chrfpp(expected, ref_sentences)
    multi = [i for i, doc in enumerate(ref_docs) if i % 2 == 0 and len(doc) > 1]  # no separator, several sentences
    assert report["aligned"]["resegmented_documents"] == multi and report["aligned"]["sentences"] == len(ref_sentences)
    whole_hyps = [h.replace(" <s> ", " ") for h in hyps]
    assert report["overall"]["chrf++"] == chrfpp(whole_hyps, [" ".join(doc) for doc in ref_docs])
    assert report["separator"] == "<s>" and report["signature"].endswith("nfkc:yes")
    # the same references as sentences and make-docs's .lines sidecar (here in reverse file order)
    order = list(reversed(ref_sentences))
    sent_file = write(tmp_path / "ref.sentences", order)
    numbers, k = [], 0
    for doc in ref_docs:
        numbers.append(" ".join(str(len(order) - (k + j)) for j in range(len(doc))))
        k += len(doc)
    lines = write(tmp_path / "ref.lines", numbers)
    for argv in (["--generate", str(gen)], ["--hyp", str(write(tmp_path / "hyp", hyps))]):
        assert cli.main(["evaluate", *argv, "--doc-separator", "<s>", "--ref-sentences", str(sent_file),
                         "--lines", str(lines), "--json", str(tmp_path / "s.json"), "--force"]) == 0
        again = json.loads((tmp_path / "s.json").read_text())
        assert again["aligned"] == report["aligned"] and again["overall"]["chrf++"] == report["overall"]["chrf++"]
    # without a separator every multi-sentence document is cut again by edit distance
    assert cli.main(["evaluate", "--hyp", str(write(tmp_path / "whole", whole_hyps)), "--ref-sentences",
                     str(sent_file), "--lines", str(lines), "--json", str(tmp_path / "w.json"), "--force"]) == 0
    cut = json.loads((tmp_path / "w.json").read_text())["aligned"]
    assert cut["resegmented"] == sum(len(doc) > 1 for doc in ref_docs)


def test_floors_and_a_baseline_comparison(tmp_path, capsys):
    ref_docs, hyps, _ = documents_sample(n=16)
    refs = [" <s> ".join(doc) for doc in ref_docs]
    ref, hyp = write(tmp_path / "ref", refs), write(tmp_path / "hyp", hyps)
    worse = write(tmp_path / "worse", [" <s> ".join(s.split(" <s> ")[:1]) for s in hyps])  # first sentence only
    assert cli.main(["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--doc-separator", "<s>", "--floors",
                     "--baseline", str(worse), "--json", str(tmp_path / "j")]) == 0
    out = capsys.readouterr().out
    assert "whole-document floors" in out and "paired bootstrap 95% interval" in out
    report = json.loads((tmp_path / "j").read_text())
    assert set(report["floors"]) == {"wrong_document", "prefix_0.15", "prefix_0.30", "prefix_0.63", "looped_prefix"}
    whole = report["comparison"]["scores"]["whole"]
    docs = [" ".join(doc) for doc in ref_docs]
    assert whole["difference"] == pytest.approx(
        chrfpp([h.replace(" <s> ", " ") for h in hyps], docs)
        - chrfpp([w.split(" <s> ")[0] for w in read_lines_of(worse)], docs), abs=1e-9)
    aligned = report["comparison"]["scores"]["aligned"]
    assert aligned["ci95"][0] <= aligned["difference"] <= aligned["ci95"][1] and aligned["ci95"][0] > 0


def read_lines_of(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_malformed_document_inputs_fail_in_one_line(tmp_path, capsys):
    ref_docs, hyps, _ = documents_sample(n=4)
    refs = [" <s> ".join(doc) for doc in ref_docs]
    hyp, ref = write(tmp_path / "hyp", hyps), write(tmp_path / "ref", refs)
    sentences = write(tmp_path / "sent", [s for doc in ref_docs for s in doc])
    srcs = [f"eng_Latn hin_Deva d{i}" for i in range(4)]
    gen = write(tmp_path / "gen.out", generate_output(srcs, hyps, refs, range(4)))
    other_srcs = write(tmp_path / "other.out", generate_output([s + " x" for s in srcs], hyps, refs, range(4)))
    cases = [
        (["--hyp", hyp, "--ref", ref, "--doc-separator", "< s >"], "--doc-separator '< s >': a separator is one symbol"),
        (["--hyp", hyp, "--ref-sentences", sentences], "--ref-sentences FILE and --lines FILE go together"),
        (["--hyp", hyp, "--ref", ref, "--ref-sentences", sentences, "--lines", write(tmp_path / "l1", ["1"] * 4)],
         "give the references once"),
        (["--hyp", hyp, "--ref-sentences", sentences, "--lines", write(tmp_path / "l2", ["1 2", "x 3", "4", "5"])],
         "l2 line 2: 'x 3' is not 1-based line numbers"),
        (["--hyp", hyp, "--ref-sentences", sentences, "--lines", write(tmp_path / "l3", ["1", "0", "2", "3"])],
         "l3 line 2: line number 0 is outside"),
        (["--hyp", hyp, "--ref-sentences", sentences, "--lines", write(tmp_path / "l4", ["1", "2", "999", "3"])],
         "line number 999 is outside"),
        (["--hyp", hyp, "--ref-sentences", sentences, "--lines", write(tmp_path / "l5", ["1", "2"])],
         "4 hypotheses but 2 references"),
        (["--hyp", hyp, "--ref", ref, "--baseline", write(tmp_path / "short", hyps[:3])],
         "has 3 outputs, " + str(hyp) + " 4: not outputs of the same inputs"),
        (["--generate", gen, "--ref", ref, "--baseline", other_srcs], "its S-0 line is not"),
    ]
    for argv, message in cases:
        assert cli.main(["evaluate", *map(str, argv)]) == 2, argv
        captured = capsys.readouterr()
        assert message in captured.err and len(captured.err.strip().splitlines()) == 1, (argv, captured.err)
        assert captured.out == ""
