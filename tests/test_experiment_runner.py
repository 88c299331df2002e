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
from benchmarks.experiment.grid import Job, base_cap, jobs_in_order, study_jobs
from benchmarks.experiment.runner import cell_dir
from benchmarks.experiment.settings import SEP_VARIANTS, Corpus, looping_variants

ROOT = Path(__file__).resolve().parents[1]


def test_run_on_counts_capped_and_looping_hypotheses(tmp_path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    # three documents of 9 source tokens (+ end of sentence = 10), each its own batch:
    # cap = int(1.2 * 10 + 10) = 22 tokens, so a capped hypothesis has 23 steps with the end
    (raw / "eval.src").write_text(("eng_Latn hin_Deva " + "a " * 7 + "\n") * 3)
    refs = ["x y z w v u t", "p q r s t u v", "k l m n o p q"]
    (raw / "eval.ref").write_text("\n".join(refs) + "\n")
    (raw / "eval.tgt").write_text("\n".join(refs) + "\n")
    hyps = ["x y z w v u t",                       # stopped: 8 steps
            "p q r s p q r s p q r s p q r s p q r s p q",  # looping, ran to the cap: 23 steps
            "k l m n o p q r s t u v w x y z a b c d e"]  # 21 words, stopped one short of the cap
    steps = [8, 23, 22]
    gen = tmp_path / "seed1" / "full-rope" / "generate.txt"
    gen.parent.mkdir(parents=True)
    lines = ["python -m fairseq_cli.generate data --batch-size 1 --max-len-a 1.2 --max-len-b 10 --max-len-a 1.2"]
    for i, (h, n) in enumerate(zip(hyps, steps)):
        lines += [f"S-{i}\tsrc", f"T-{i}\t{refs[i]}", f"H-{i}\t-0.5\t{h}", f"D-{i}\t-0.5\t{h}",
                  f"P-{i}\t" + " ".join(["-0.1"] * n)]
    gen.write_text("\n".join(lines) + "\n")
    info = {"segments": [{"split": "doc", "lang": "hin_Deva", "tokens": 7}] * 3, "ref_file": "eval.ref"}
    cell = {"seed": 1, "regime": "full", "positions": "rope"}
    out = run_on(tmp_path, cell, info)["doc"]
    assert out["at_cap"] == out["at_own_cap"] == round(1 / 3, 3)
    grams = [len(h.split()) - 3 for h in hyps]
    repeats = 22 - 3 - 4  # the loop "p q r s": 19 4-grams, 4 distinct
    assert out["repeated_4grams"] == round(repeats / sum(grams), 3)
    assert out["repeated_4grams_ref"] == 0


def test_run_on_counts_a_document_at_the_cap_of_its_batch(tmp_path):
    """fairseq caps a batch by its longest source: a short document batched with a long one may
    run past its own source's cap without reaching the cap it had."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    sources = ["eng_Latn hin_Deva " + "a " * 3, "eng_Latn hin_Deva " + "a " * 28]  # 6 and 31 tokens with the end
    (raw / "eval.src").write_text("\n".join(sources) + "\n")
    refs = ["x y z", "p q r"]
    (raw / "eval.ref").write_text("\n".join(refs) + "\n")
    (raw / "eval.tgt").write_text("\n".join(refs) + "\n")
    # one batch: cap int(1.0 * 31 + 2) = 33 tokens (34 steps with the end); the short one's own cap is 8
    steps = [15, 34]
    gen = tmp_path / "seed1" / "full-rope" / "generate.txt"
    gen.parent.mkdir(parents=True)
    lines = ["python -m fairseq_cli.generate data --batch-size 2 --max-len-a 1.0 --max-len-b 2"]
    for i, n in enumerate(steps):
        lines += [f"S-{i}\tsrc", f"T-{i}\t{refs[i]}", f"H-{i}\t-0.5\tw", f"P-{i}\t" + " ".join(["-0.1"] * n)]
    gen.write_text("\n".join(lines) + "\n")
    info = {"segments": [{"split": "doc", "lang": "hin_Deva", "tokens": 3}] * 2, "ref_file": "eval.ref"}
    out = run_on(tmp_path, {"seed": 1, "regime": "full", "positions": "rope"}, info)["doc"]
    assert out["at_cap"] == 0.5 and out["at_own_cap"] == 1.0


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


def test_study_jobs_follow_issue_26s_order():
    """The grid's cells, then split for every decodable one; each separator cell with its modes
    (split first), the headline one for the later seed (its own base) and a fine-tuning seed on
    the first seed's base; the grid's cells in their other modes; the looping experiments only
    when asked. The switch alone keeps no checkpoint and is never decoded in a mode."""
    cfg = {"looping": dict(ft_updates=(1000,), base_updates=(4000,))}
    variants = {"long": {"doc_budget": 9}, **SEP_VARIANTS, **looping_variants(cfg)}
    corpus = Corpus(name="x", here=ROOT, settings={}, write=None, group=None, positions=("sinusoidal", "rope"),
                    variants=variants, write_separated=object())
    args = argparse.Namespace(extra_seed_cells=["full:rope"], seeds=[1, 2], regimes=["none", "full"],
                              positions=["sinusoidal", "rope"], variant_cells=[], all_cells=False,
                              modes=["whole", "aligned", "split", "aligned+norepeat"],
                              sep_cells=["full:rope:sep", "minlora:rope:sep-scale2"], sep_seed_cells=["full:rope:sep"],
                              ft_seeds=[3], looping=False, looping_cells=["full:rope"],
                              looping_variants=["sep-u1000"])
    jobs = study_jobs(corpus, args, cfg, repetition=False)
    grid = [Job(1, ("none", "sinusoidal"), 1, None), Job(1, ("full", "sinusoidal"), 1, None),
            Job(1, ("full", "rope"), 1, None), Job(2, ("none", "sinusoidal"), 2, None), Job(2, ("full", "rope"), 2, None),
            Job(1, ("none", "rope"), 1, None)]
    decoded = [j for j in grid if j.cell != ("none", "rope")]
    sep, scaled = ("full", "rope", "sep"), ("minlora", "rope", "sep-scale2")
    expected = grid + [j._replace(task="mode:split") for j in decoded]
    for seed, base in ((1, 1), (2, 2), (3, 1)):
        expected += [Job(seed, sep, base, None)] + [Job(seed, sep, base, f"mode:{m}") for m in ("split", "whole", "aligned")]
    expected += [Job(1, scaled, 1, None)] + [Job(1, scaled, 1, f"mode:{m}") for m in ("split", "whole", "aligned")]
    expected += [j._replace(task="mode:whole") for j in decoded]
    assert jobs == expected
    args.looping = True
    looped = study_jobs(corpus, args, cfg, repetition=True)
    assert looped[:len(expected)] != expected  # with the repetition controls, aligned+norepeat joins the sep cells
    rope, more = ("full", "rope"), ("full", "rope", "sep-u1000")  # the plain cell ran already: not again
    assert looped[len(looped) - 9:] == [Job(1, rope, 1, "diagnose")] + [
        Job(1, rope, 1, f"loop:{name}") for name in ("greedy", "unnormalized", "norepeat", "lenpen0.5")] + [
        Job(1, more, 1, None)] + [Job(1, more, 1, f"mode:{m}") for m in ("split", "whole", "aligned")]
    # a further fine-tuning seed sits beside its base's cells, under its own name
    assert cell_dir(ROOT, 3, sep, 1) == ROOT / "seed1" / "full-rope-sep-seed3"
    assert cell_dir(ROOT, 2, sep, 2) == cell_dir(ROOT, 2, sep) == ROOT / "seed2" / "full-rope-sep"


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


def test_a_variant_fine_tunes_with_its_options_from_the_base_it_names(tmp_path, monkeypatch):
    """fairseq-train's command line of the separator variants: the shared separated data, a
    variant's own options last (so that they override the grid's), its update count, an earlier
    base checkpoint, and a further fine-tuning seed on another seed's base."""
    commands = []

    def fake_run(tool, args, logfile, threads, append=False):
        commands.append([str(a) for a in args])
        logfile.write_text("")
        return 1.0
    monkeypatch.setattr(train, "run", fake_run)
    cfg = {"looping": dict(ft_updates=(1000,), base_updates=(4000,)), "layers": 1, "dim": 8, "ffn": 8, "heads": 1,
           "max_tokens": 64, "ft_positions": 16, "ft_updates": 300}
    spec = Corpus(name="x", here=tmp_path, settings={}, write=None, group=None,
                  variants={**SEP_VARIANTS, **looping_variants(cfg)})
    base = tmp_path / "seed1" / "base"
    base.mkdir(parents=True)
    (base / "checkpoint_3_4000.pt").write_bytes(b"")

    def command(cell, seed=1, base_seed=None):
        save = tmp_path / "out"
        save.mkdir(exist_ok=True)
        info = train.finetune(spec, tmp_path, cfg, seed, cell, save, 1, base_seed)
        return commands[-1], info

    def value(cmd, option):
        return cmd[len(cmd) - 1 - cmd[::-1].index(option) + 1]  # the last one given wins in argparse
    cmd, info = command(("minlora", "rope", "sep-scale2"))
    assert cmd[0] == str(tmp_path / "data" / "ft-sep-bin") and value(cmd, "--lora-alpha") == "8"
    assert cmd[-2:] == ["--lora-alpha", "8"] and info["updates"] == 300
    cmd, _ = command(("full", "rope", "sep-nols"))
    assert value(cmd, "--label-smoothing") == "0.0" and cmd[0].endswith("ft-sep-bin")
    cmd, info = command(("full", "rope", "sep-u1000"))
    assert value(cmd, "--max-update") == "1000" and info["updates"] == 1000
    cmd, info = command(("full", "rope", "sep-from4000"))
    assert value(cmd, "--finetune-from-model") == str(base / "checkpoint_3_4000.pt")
    assert info["base"] == "seed1/base/checkpoint_3_4000.pt"
    cmd, info = command(("full", "rope", "sep"), seed=3, base_seed=1)
    assert value(cmd, "--seed") == "3" and value(cmd, "--finetune-from-model") == str(base / "checkpoint_best.pt")
    assert info["base"] == "seed1/base/checkpoint_best.pt"
    (base / "checkpoint_3_4000.pt").unlink()
    with pytest.raises(RuntimeError, match="no checkpoint_\\*_4000.pt"):
        command(("full", "rope", "sep-from4000"))


@pytest.mark.slow
def test_quick_study_decodes_documents_in_modes_diagnoses_looping_and_rescores(tmp_path):
    """The study's new stages end to end on the toy corpus's --quick: the base and a full RoPE
    cell fine-tuned on separated documents, the document evaluation set in the split-and-join
    baseline, aligned with its fallback and with n-gram blocking (and whole, for the looping
    diagnosis), the looping diagnosis and searches; then --rescore makes every score again from the cached outputs."""
    work = tmp_path / "work"
    script = ROOT / "benchmarks" / "length_generalization" / "run.py"
    common = ["--quick", "--seeds", "1", "--regimes", "none", "--positions", "sinusoidal", "--variant-cells",
              "--sep-cells", "full:rope:sep", "--sep-seed-cells", "--modes", "split", "aligned+fallback", "aligned+norepeat",
              "--looping", "--looping-cells", "full:rope:sep", "--looping-variants", "--threads", "1",
              "--workdir", str(work)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script), *common], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((work / "results.json").read_text())
    cells = {(c["regime"], c["positions"], c["variant"]): c for c in results["cells"]}
    assert set(cells) == {("none", "sinusoidal", None), ("full", "rope", "sep")}
    base, sep = cells["none", "sinusoidal", None], cells["full", "rope", "sep"]
    assert set(base["decodes"]) == {"split"}  # a model fine-tuned without separators: not aligned
    assert set(sep["decodes"]) == {"split", "aligned+fallback", "aligned+norepeat", "whole"}  # whole: the diagnosis's
    assert set(sep["scores"]) == {"sent"} and sep["ft_docs"]["separator"] == "<s>"
    documents = len(results["doc_eval"]["documents"])
    for c in (base, sep):
        for mode, d in c["decodes"].items():
            entry = d["scores"]["doc8"]["all"]
            assert entry["chapters"] == documents and 0 <= entry["aligned_chrf++"] <= 100
            assert ("ci95_vs_split" in entry) == (mode != "split")
            assert set(d["run_on"]["doc8"]) >= {"at_cap", "repeated_4grams", "sentence_count_right"}
        assert c["decodes"]["split"]["run_on"]["doc8"]["sentence_count_right"] == 1.0
    for mode in ("aligned+fallback", "aligned+norepeat"):
        assert sep["decodes"][mode]["run_on"]["doc8"]["sentence_count_right"] == 1.0
    assert sep["context"]["split"]["total"] > 0  # the toy's pronouns counted
    looping = sep["looping"]
    assert looping["diagnosis"]["summary"]["documents"] == documents
    assert set(looping["decodes"]) == {"greedy", "unnormalized", "lenpen0.5", "norepeat"}
    for d in looping["decodes"].values():  # each search against the cell's own split
        low, high = d["scores"]["doc8"]["all"]["ci95_vs_split"]
        assert low <= high
    assert "prefix_0.30" in results["doc_eval"]["floors"]["doc8"]["all"]
    md = (work / "results.md").read_text()
    assert "**Document evaluation set**" in md and "**Why the models loop**" in md
    before = (work / "seed1" / "full-rope-sep" / "decodes" / "split.txt").stat().st_mtime_ns
    # as a work directory prepared before the reference sentences were kept: --rescore finds them again
    raw, data_json = work / "data" / "raw", work / "data" / "data.json"
    kept = {name: (raw / name).read_text() for name in ("eval.ref-sentences", "eval.lines")}
    info = json.loads(data_json.read_text())
    data_json.write_text(json.dumps({k: v for k, v in info.items() if k not in ("ref_sentences", "floors")}))
    for name in kept:
        (raw / name).unlink()
    proc = subprocess.run([sys.executable, str(script), *common, "--rescore"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {name: (raw / name).read_text() for name in kept} == kept
    again = json.loads((work / "results.json").read_text())
    assert again["data"]["floors"] == info["floors"]
    assert all(c["signature"].endswith("nfkc:yes") for c in again["cells"])
    assert [c["decodes"] for c in again["cells"]] == [c["decodes"] for c in results["cells"]]
    assert [c["scores"] for c in again["cells"]] == [c["scores"] for c in results["cells"]]
    base_again = next(c for c in again["cells"] if c["regime"] == "none")
    assert "aligned_chrf++" in base_again["scores"]["doc32"]["all"]
    assert (work / "seed1" / "full-rope-sep" / "decodes" / "split.txt").stat().st_mtime_ns == before  # nothing decoded


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


def test_mode_outputs_are_read_sentence_by_sentence_and_capped_as_the_generator_caps(tmp_path):
    """read_outputs cuts each output at the separator and applies the grid's post-processing per
    sentence; caps_at gives split/window a cap per sentence and aligned one per document from its
    own source (raised to what its sentence count needs), whole its batch's; run_on_of counts an
    output at its cap when its tokens (separators included) reach it."""
    from benchmarks.experiment.doc_decode import caps_at, read_outputs, run_on_of
    gen = tmp_path / "g.txt"
    gen.write_text("python -m fairseq_cli.generate d --doc-separator <s>\n"
                   "H-0\t-0.5\t\u2581a b\u2581c <s> \u2581d\n"
                   "H-1\t-0.5\t\u2581x \u2581y \u2581z\n")
    assert read_outputs(gen, "sentencepiece") == [(["ab c", "d"], [2, 1], 1), (["x y z"], [3], 0)]
    assert read_outputs(gen, "none")[0][0] == ["\u2581a b\u2581c", "\u2581d"]
    # two documents: sentences of 3 and 4 tokens after two tags; one of 5 tokens
    sources = [(2, [3, 4]), (2, [5])]
    info = {"subsets": {"separated": "test", "plain": "test1"},
            "documents": [{"tokens": 7, "sentences": 2}, {"tokens": 5, "sentences": 1}]}
    cfg = {"max_len_a": 1.5, "max_len_b": 2, "gen_batch": 1}
    assert caps_at(info, sources, ["--doc-decoding", "split"], "test", cfg) == [
        [int(1.5 * 6 + 2), int(1.5 * 7 + 2)], [int(1.5 * 8 + 2)]]
    separated = [2 + 3 + 1 + 4 + 1, 2 + 5 + 1]  # tags, sentences, separator, end
    assert caps_at(info, sources, ["--doc-decoding", "aligned"], "test", cfg) == [
        max(int(1.5 * n + 2), 2 * k + 1) for n, k in zip(separated, (1, 0))]
    assert caps_at(info, sources, [], "test1", cfg) == [int(1.5 * 10 + 2), int(1.5 * 8 + 2)]  # whole, own batches
    tight = {"max_len_a": 0.0, "max_len_b": 1, "gen_batch": 1}  # aligned still fits two sentences
    assert caps_at(info, sources, ["--doc-decoding", "aligned"], "test", tight) == [3, 1]
    batched = dict(cfg, gen_batch=2)  # one batch: the longer source's cap for both
    assert caps_at(info, sources, ["--doc-decoding", "whole"], "test", batched) == [int(1.5 * 11 + 2)] * 2
    outputs = [(["a b c", "d"], [9, 1], 1), (["x"], [14], 0)]
    refs = [["a b c", "d e"], ["x y"]]
    split = run_on_of(outputs, [[9, 10], [14]], refs)
    assert split["at_cap"] == 1.0 and split["sentences_at_cap"] == round(2 / 3, 3)
    assert split["sentence_count_right"] == 1.0
    whole = run_on_of(outputs, [11, 15], refs, fallen=1)
    assert whole["at_cap"] == 0.5 and whole["fell_back"] == 1 and "sentences_at_cap" not in whole


def test_decodes_layout_scores_each_mode_whole_and_sentence_by_sentence_against_split(tmp_path):
    """results.json's ``decodes``: per mode the scores' layout (test set -> group -> entry), each
    entry with whole-document ChrF++ (sacrebleu on the documents), aligned ChrF++ (sacrebleu on
    the sentence pairs; an output without separators cut again against the reference
    sentences), how many documents, and but for split the paired interval against split; NFKC
    on both sides."""
    from sacrebleu.metrics import CHRF

    from benchmarks.experiment.doc_scores import decodes_layout
    chrf = CHRF(word_order=2)
    langs = ["spa_Latn", "spa_Latn", "ben_Beng", "ben_Beng"]
    refs = [["uno dos tres .", "cuatro cinco ."], ["seis siete .", "ocho nueve diez ."],
            ["ka\u09dc kha .", "ga gha ."], ["ca cha ja .", "jha ."]]
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "doc-eval.ref").write_text("".join(" ".join(r) + "\n" for r in refs))
    write_sentence_documents(raw / "doc-eval.ref-sentences", raw / "doc-eval.lines", refs)
    data = {"languages": ["spa_Latn", "ben_Beng"], "groups": {"spa_Latn": "seen", "ben_Beng": "related"},
            "doc_languages": ["spa_Latn"], "segments": [{"split": "chapter", "lang": lang} for lang in langs],
            "ref_file": "doc-eval.ref", "ref_sentences": ["doc-eval.ref-sentences", "doc-eval.lines"]}
    nfkc = "ka\u09a1\u09bc kha ."  # what SentencePiece's NFKC makes of U+09DC
    split = [["uno dos tres .", "cuatro cinco ."], ["seis siete .", "ocho nueve once ."],
             [nfkc, "ga gha ."], ["ca cha ja .", "jha ."]]
    whole = [["uno dos tres . cuatro cinco ."], ["seis . seis . seis ."], [f"{nfkc} ga gha ."], ["ca ."]]
    out = decodes_layout(tmp_path, data, {"split": split, "whole": whole, "same": split})
    assert set(out) == {"split", "whole", "same"}
    for mode in out:
        assert set(out[mode]["scores"]) == {"chapter"}
        entries = out[mode]["scores"]["chapter"]
        assert set(entries) == {"all", "seen", "related", "unseen", "spa_Latn", "ben_Beng"}
        for group, ids in (("all", [0, 1, 2, 3]), ("seen", [0, 1]), ("ben_Beng", [2, 3])):
            e = entries[group]
            assert e["chapters"] == e["segments"] == len(ids)
            assert ("ci95_vs_split" in e) == (mode != "split")
            norm = [[s.replace("\u09dc", "\u09a1\u09bc") for s in refs[i]] for i in ids]
            docs = {"split": split, "whole": whole, "same": split}[mode]
            assert e["chrf++"] == round(chrf.corpus_score([" ".join(docs[i]) for i in ids],
                                                          [[" ".join(r) for r in norm]]).score, 2)
            if mode != "whole":  # the right number of sentences: scored pair by pair
                pairs = [s for i in ids for s in docs[i]]
                assert e["aligned_chrf++"] == round(chrf.corpus_score(pairs, [[s for r in norm for s in r]]).score, 2)
    assert out["split"]["scores"]["chapter"]["related"]["aligned_chrf++"] == 100  # NFKC on both sides
    assert out["same"]["scores"]["chapter"]["all"]["ci95_vs_split"] == [0.0, 0.0]
    # the looping searches: split is not among the outputs but given as their baseline
    searched = decodes_layout(tmp_path, data, {"whole": whole, "same": split}, baseline=split)
    assert searched["same"]["scores"]["chapter"]["all"]["ci95_vs_split"] == [0.0, 0.0]
    assert searched["whole"]["scores"]["chapter"]["all"] == out["whole"]["scores"]["chapter"]["all"]
    assert "ci95_vs_split" not in decodes_layout(tmp_path, data, {"whole": whole})["whole"]["scores"]["chapter"]["all"]
    low, high = out["whole"]["scores"]["chapter"]["all"]["ci95_vs_split"]
    assert low < 0 and low <= high <= 0  # two documents of four are as good as split: some draws tie
    assert out["whole"]["scores"]["chapter"]["all"]["resegmented"] == 4  # one sentence each: cut again
    assert out["whole"]["scores"]["chapter"]["all"]["aligned_chrf++"] < out["split"]["scores"]["chapter"]["all"]["aligned_chrf++"]
