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
