"""The shared experiment runner's own logic: job order and the run-on diagnosis (no training)."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.experiment.data import reference_floors, write_sentence_documents
from benchmarks.experiment.decode import ci95_vs_split, run_on, score_segments
from benchmarks.experiment import train
from benchmarks.experiment.grid import base_cap, jobs_in_order
from benchmarks.experiment.settings import Corpus

ROOT = Path(__file__).resolve().parents[1]


def test_run_on_counts_capped_and_looping_hypotheses(tmp_path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    # three documents of 9 source tokens (+ end of sentence = 10): cap = 1.2 * 10 + 10 = 22 steps
    (raw / "eval.src").write_text(("eng_Latn hin_Deva " + "a " * 7 + "\n") * 3)
    refs = ["x y z w v u t", "p q r s t u v", "k l m n o p q"]
    (raw / "eval.ref").write_text("\n".join(refs) + "\n")
    hyps = ["x y z w v u t",                       # stopped: 8 steps
            "p q r s p q r s p q r s p q r s p q r s p",  # looping, ran to the cap: 22 steps
            "k l m n o p q r s t u v w x y z a b c d e"]  # 21 words, no loop, capped
    steps = [8, 22, 22]
    gen = tmp_path / "seed1" / "full-rope" / "generate.txt"
    gen.parent.mkdir(parents=True)
    lines = ["python -m fairseq_cli.generate data --max-len-a 1.2 --max-len-b 10 --max-len-a 1.2"]
    for i, (h, n) in enumerate(zip(hyps, steps)):
        lines += [f"S-{i}\tsrc", f"T-{i}\t{refs[i]}", f"H-{i}\t-0.5\t{h}", f"D-{i}\t-0.5\t{h}",
                  f"P-{i}\t" + " ".join(["-0.1"] * n)]
    gen.write_text("\n".join(lines) + "\n")
    info = {"segments": [{"split": "doc", "lang": "hin_Deva", "tokens": 7}] * 3, "ref_file": "eval.ref"}
    cell = {"seed": 1, "regime": "full", "positions": "rope"}
    out = run_on(tmp_path, cell, info)["doc"]
    assert out["at_cap"] == round(2 / 3, 3)
    grams = [len(h.split()) - 3 for h in hyps]
    repeats = 21 - 3 - 4  # the loop "p q r s": 18 4-grams, 4 distinct
    assert out["repeated_4grams"] == round(repeats / sum(grams), 3)
    assert out["repeated_4grams_ref"] == 0


def test_document_test_sets_are_also_scored_sentence_by_sentence(tmp_path):
    """score_segments adds aligned ChrF++ to the document test sets (outputs without separators
    cut again against the reference sentences), NFKC on both sides; ci95_vs_split is the paired
    interval of aligned ChrF++ against the split mode's outputs; the floors come per test set."""
    from sacrebleu.metrics import CHRF
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    ref_docs = [["ka\u09dc kha .", "ga gha ."], ["x y z .", "u v ."], ["one ."], ["two ."],
                ["a b c .", "d e f .", "g h ."], ["p q .", "r s t ."]]
    segments = [{"split": "doc", "lang": "ben_Beng"}, {"split": "doc", "lang": "spa_Latn"},
                {"split": "sent", "lang": "ben_Beng"}, {"split": "sent", "lang": "spa_Latn"},
                {"split": "doc", "lang": "spa_Latn"}, {"split": "doc", "lang": "ben_Beng"}]
    (raw / "eval.ref").write_text("".join(" ".join(d) + "\n" for d in ref_docs))
    write_sentence_documents(raw / "eval.ref-sentences", raw / "eval.lines", ref_docs)
    info = {"segments": segments, "ref_file": "eval.ref", "ref_sentences": ["eval.ref-sentences", "eval.lines"],
            "languages": ["ben_Beng", "spa_Latn"], "groups": {"ben_Beng": "related", "spa_Latn": "seen"},
            "doc_languages": ["spa_Latn"]}
    nfkc = "ka\u09a1\u09bc kha ."  # what SentencePiece's NFKC makes of the reference's U+09DC
    hyps = [f"{nfkc} ga gha .", "x y z . u w .", "one .", "two .", "a b c . d e f . g h .", "p q . r s t ."]
    scores, signatures = score_segments(tmp_path, info, hyps, "test")
    assert signatures["chrf++"].endswith("nfkc:yes")
    doc = scores["doc"]
    assert doc["ben_Beng"]["aligned_chrf++"] == 100 and doc["ben_Beng"]["chrf++"] == 100  # NFKC on both sides
    assert doc["all"]["resegmented"] == 4 and "aligned_chrf++" not in scores["sent"]["all"]
    sentences = [nfkc, "ga gha .", "x y z .", "u w .", "a b c .", "d e f .", "g h .", "p q .", "r s t ."]
    refs = [s.replace("\u09dc", "\u09a1\u09bc") for d in (0, 1, 4, 5) for s in ref_docs[d]]
    assert doc["all"]["aligned_chrf++"] == round(CHRF(word_order=2).corpus_score(sentences, [refs]).score, 2)
    split_hyps = [h.replace(" .", " . <s>", 1) for h in hyps]  # with separators: the same sentences
    assert ci95_vs_split(tmp_path, info, hyps, split_hyps, split="doc", separator="<s>") == [0.0, 0.0]
    worse = ["ka", "x", "one .", "two .", "a", "p"]
    low, high = ci95_vs_split(tmp_path, info, hyps, worse, split="doc")
    assert 0 < low <= high
    floors = reference_floors(segments, ref_docs)
    assert set(floors) == {"doc"} and set(floors["doc"]) == {"all", "ben_Beng", "spa_Latn"}
    assert floors["doc"]["all"]["prefix_0.63"] > floors["doc"]["all"]["prefix_0.15"]


def test_jobs_put_headline_cells_first_and_variants_after_full():
    corpus = Corpus(name="x", here=ROOT, settings={}, write=None, group=None,
                               positions=("sinusoidal", "rope"), variants={"long": {"doc_budget": 9}})
    args = argparse.Namespace(extra_seed_cells=["full:rope"], seeds=[1, 2], regimes=["none", "full", "lora"],
                              positions=["sinusoidal", "rope"], variant_cells=["full:rope:long"], all_cells=False)
    jobs = jobs_in_order(corpus, args)
    assert jobs == [(1, ("none", "sinusoidal")), (1, ("full", "sinusoidal")), (1, ("full", "rope")),
                    (1, ("full", "rope", "long")), (2, ("none", "sinusoidal")), (2, ("full", "rope")),
                    (1, ("lora", "sinusoidal")), (1, ("lora", "rope")), (1, ("none", "rope"))]


def test_a_later_seeds_base_trains_no_more_updates_than_the_first_seeds(tmp_path, monkeypatch):
    assert base_cap(tmp_path, [1, 2], 2) is None  # the first base is not finished yet
    first = tmp_path / "seed1" / "base"
    first.mkdir(parents=True)
    (first / "train.json").write_text(json.dumps({"updates": 12979}))
    assert base_cap(tmp_path, [1, 2], 1) is None and base_cap(tmp_path, [1, 2], 2) == 12979
    commands = []

    def fake_run(tool, args, logfile, threads, append=False):  # fairseq-train's log, one validation
        commands.append([str(a) for a in args])
        logfile.write_text("| valid on 'valid' subset | loss 6.1 | nll_loss 5 | num_updates 7\n")
        return 1.0
    monkeypatch.setattr(train, "run", fake_run)
    spec = Corpus(name="x", here=tmp_path, settings={}, write=None, group=None)
    cfg = dict(layers=1, dim=8, ffn=8, heads=1, base_updates=30000, max_tokens=64, base_positions=16)
    for seed, cap in ((2, 12979), (3, None)):
        train.train_base(spec, tmp_path, cfg, seed, 1, updates=cap)
        command = commands[-1]
        assert command[command.index("--max-update") + 1] == str(cap or 30000)


@pytest.mark.slow
def test_quick_mode_runs_every_step_of_a_small_grid(tmp_path):
    """The study's --quick mode end to end on the toy corpus (data, base, the switch alone by
    ``convert``, full fine-tuning, decoding, report), for a sinusoidal and a RoPE column, the
    document-share sweep's cells (an eighth, and none, of the fine-tuning documents), and the
    fine-tuned RoPE cells decoded again through CTranslate2 (``--ct2``): greedy search in
    fairseq-generate's batches and length caps gives the plugin's outputs."""
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "length_generalization" / "run.py"), "--quick",
                           "--seeds", "1", "--regimes", "none", "full", "--positions", "sinusoidal", "rope",
                           "--variant-cells", "full:rope:docs12", "full:rope:docs0",
                           "--ct2", "--threads", "1", "--workdir", str(work)], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((work / "results.json").read_text())
    cells = {(c["regime"], c["positions"], c["variant"]): c for c in results["cells"]}
    assert set(cells) == {("none", "sinusoidal", None), ("none", "rope", None), ("full", "sinusoidal", None),
                          ("full", "rope", None), ("full", "rope", "docs12"), ("full", "rope", "docs0")}
    all_docs = results["data"]["ft_docs"]["documents"]
    assert cells["full", "rope", "docs12"]["ft_docs"]["documents"] == round(all_docs / 8)
    assert cells["full", "rope", "docs0"]["ft_docs"]["documents"] == 0
    data = work / "data"  # what fairseq binarised: every sentence, plus the documents drawn
    sentences = results["data"]["ft_sentences"]
    for name, docs in (("ft-bin", all_docs), ("ft-docs12-bin", round(all_docs / 8)), ("ft-docs0-bin", 0)):
        log = (data / f"preprocess-{name[:-4]}.log").read_text()
        assert f"[tgt] {data / 'raw' / name[:-4]}-train.tgt: {sentences + docs} sents" in log, log[-600:]
    assert "**How little document data**" in (work / "results.md").read_text()
    checked = {k for k, c in cells.items() if "ct2" in c}
    assert checked == {("full", "rope", None), ("full", "rope", "docs12"), ("full", "rope", "docs0")}
    for key in checked:
        ct2 = cells[key]["ct2"]
        assert set(ct2["scores"]) == set(cells[key]["scores"])
        assert all(share >= 0.9 for share in ct2["identical_to_plugin"].values()), ct2["identical_to_plugin"]
    assert "**Through CTranslate2**" in (work / "results.md").read_text()
    for c in results["cells"]:
        assert all(0 <= s["all"]["chrf++"] <= 100 for s in c["scores"].values())
        assert c["signature"].endswith("nfkc:yes")  # documents also scored sentence by sentence
        assert all(0 <= s["all"]["aligned_chrf++"] <= 100 for name, s in c["scores"].items() if name != "sent")
    assert set(results["data"]["floors"]) == set(cells["full", "rope", None]["scores"]) - {"sent"}
    assert (work / "results.md").read_text().startswith("toy corpus")
