"""Decoding and scoring: a cell's test sets (ChrF++, BLEU, length ratio per test set and language
group), the base's learning curve, and why output runs long (the run-on diagnosis)."""
import json
import subprocess
import sys

from fairseq_relpos.bootstrap import paired_bootstrap
from fairseq_relpos.documents.sentences import read_sentence_documents, split_sentences
from fairseq_relpos.scoring import align_sentences, aligned_score, evaluate, read_generate, read_lines, whole_document

from .runner import PLUGIN, dir_of, log, run, write_atomic
from .settings import GEN_POSITIONS
from .train import positions_args


def base_curve(spec, work, cfg, data_info, seed, threads):
    """The base's learning curve: validation loss (from its training log) and verse ChrF++ (beam
    ``curve_beam``, the sentence test set, per language and group) of every ``curve_every``-th
    interval checkpoint and of the best one; cached per point in ``base/curve.json``."""
    save = work / f"seed{seed}" / "base"
    path = save / "curve.json"
    points = {p["checkpoint"]: p for p in json.loads(path.read_text())} if path.is_file() else {}
    valid = {v["updates"]: v for v in json.loads((save / "train.json").read_text())["valid"]}
    chosen = sorted((int(c.stem.rsplit("_", 1)[1]), c) for c in save.glob("checkpoint_*_*.pt")
                    if int(c.stem.rsplit("_", 1)[1]) % cfg.get("curve_every", cfg["base_updates"]) == 0)
    chosen.append((None, save / "checkpoint_best.pt"))
    segments = [s for s in data_info["segments"] if s["split"] == "sent"]
    refs = read_lines(work / "data" / "raw" / "eval-sent.ref")
    for updates, ckpt in chosen:
        if not ckpt.is_file():
            continue
        if updates is None:  # the best checkpoint moves on as training resumes: scored again then
            updates = torch_free_updates(ckpt)
        if ckpt.name in points and points[ckpt.name]["updates"] == updates:
            continue
        gen = save / f"curve-{ckpt.stem}.txt"
        run("generate", [work / "data" / "base-bin", "--user-dir", PLUGIN, "--task", "translation_doc",
                         "--path", ckpt, "--gen-subset", "test1", "--beam", cfg.get("curve_beam", 4), "--batch-size", 64,
                         *spec.gen_args], gen, threads)
        _, hyps, _ = read_generate(gen)
        scores = {}
        for group in ["all", *spec.groups, *data_info["languages"]]:
            ids = [i for i, s in enumerate(segments)
                   if group == "all" or s["lang"] == group or data_info["groups"][s["lang"]] == group]
            if ids:
                scores[group] = score([hyps[i] for i in ids], [refs[i] for i in ids])[0]
        points[ckpt.name] = {"checkpoint": ckpt.name, "updates": updates, "valid": valid.get(updates),
                             "beam": cfg.get("curve_beam", 4), "scores": scores}
        write_atomic(path, json.dumps(sorted(points.values(), key=lambda p: (p["updates"], p["checkpoint"])),
                                      indent=1) + "\n")
        log(f"seed {seed} base curve {ckpt.name} ({updates} updates): verse ChrF++ "
            + ", ".join(f"{g} {scores[g]['chrf++']:.1f}" for g in scores if g in ("all", *spec.groups)))
    return sorted(points.values(), key=lambda p: (p["updates"], p["checkpoint"]))


def torch_free_updates(ckpt):
    """The update count saved in a fairseq checkpoint (read in a subprocess: this runner does not
    import torch)."""
    code = ("import sys, torch; s = torch.load(sys.argv[1], map_location='cpu', weights_only=False); "
            "print(s['optimizer_history'][-1]['num_updates'])")
    return int(subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True,
                              check=True).stdout.split()[-1])


def score(hyps, refs):
    """ChrF++ (``fairseq_relpos.scoring``, NFKC on both sides), BLEU (on the same normalised
    texts) and the hypothesis/reference length ratio."""
    from sacrebleu.metrics import BLEU
    from fairseq_relpos.scoring import normalized
    chrf = evaluate(hyps, refs)
    hyps, refs = normalized(hyps), normalized(refs)
    bleu = BLEU()
    return {"chrf++": round(chrf["overall"]["chrf++"], 2), "bleu": round(bleu.corpus_score(hyps, [refs]).score, 2),
            "segments": len(refs),
            "length_ratio": round(sum(len(h.split()) for h in hyps) / max(1, sum(len(r.split()) for r in refs)), 3)
            }, chrf["signature"], str(bleu.get_signature())


def decode_and_score(spec, work, cfg, data_info, ckpt, outdir, threads, extra=(), only_sentences=False):
    """The evaluation set (``test``; ``only_sentences``: its sentence test set alone, ``test1``)
    decoded in one fairseq-generate run and scored per test set and group."""
    gen = outdir / "generate.txt"
    wall = run("generate", [work / "data" / "base-bin", "--user-dir", PLUGIN, "--task", "translation_doc",
                            "--path", ckpt, "--gen-subset", "test1" if only_sentences else "test", "--beam", cfg["beam"],
                            "--batch-size", cfg.get("gen_batch", 16), "--max-len-a", cfg.get("max_len_a", 1.2),
                            "--max-len-b", cfg.get("max_len_b", 10),
                            *positions_args(GEN_POSITIONS), *spec.gen_args, *extra], gen, threads)
    _, hyps, _ = read_generate(gen)
    scores, signatures = score_segments(work, sentences_only(data_info) if only_sentences else data_info, hyps, gen)
    return {"scores": scores, "decode_seconds": round(wall, 1), "signature": signatures["chrf++"],
            "bleu_signature": signatures["bleu"]}


def rescored(work, c, data_info):
    """A cell's scores made again from its ``generate.txt`` with this checkout's scoring:
    ``(scores, ChrF++ signature, BLEU signature)``."""
    gen = dir_of(work, c) / "generate.txt"
    _, hyps, _ = read_generate(gen)
    if "--gen-subset test1 " in gen.read_text().split("\n", 1)[0] + " ":
        data_info = sentences_only(data_info)
    scores, signatures = score_segments(work, data_info, hyps, gen)
    return scores, signatures["chrf++"], signatures["bleu"]


def sentences_only(data_info):
    """The evaluation set reduced to its sentence test set (``test1``, ``eval-sent``): what a cell
    that decoded only the sentences is scored on."""
    sent = [s for s in data_info["segments"] if s["split"] == "sent"]
    info = {k: v for k, v in data_info.items() if k not in ("segments", "ref_file", "ref_sentences")}
    return dict(info, segments=sent, ref_file="eval-sent.ref")


def score_segments(work, data_info, hyps, source, separator=None):
    """Scores per test set and group (all, each group, unseen, each language) of one hypothesis
    per test segment, in order; ``source`` names where they came from, for the error. Document
    test sets are also scored sentence by sentence (``aligned_chrf++``, with ``resegmented``: the
    documents whose output was cut again by minimum edit distance, as every output without
    ``separator`` between its sentences is); their whole-document score leaves the separator out."""
    refs = read_lines(work / "data" / "raw" / data_info.get("ref_file", "eval.tgt"))
    segments = data_info["segments"]
    if len(hyps) != len(refs) or len(refs) != len(segments):
        raise RuntimeError(f"{source}: {len(hyps)} hypotheses for {len(refs)} references")
    ref_docs = reference_documents(work, data_info)
    aligned = align_sentences(hyps, ref_docs, separator) if ref_docs is not None else None
    if separator:
        hyps = [whole_document(split_sentences(h, separator)) for h in hyps]
    scores, signatures = {}, {}
    for split in dict.fromkeys(s["split"] for s in segments):
        groups = split_groups(data_info, split)
        documents = aligned is not None and any(len(ref_docs[i]) > 1 for i in groups["all"])
        scores[split] = {}
        for group, ids in groups.items():
            if ids:
                scores[split][group], signatures["chrf++"], signatures["bleu"] = score(
                    [hyps[i] for i in ids], [refs[i] for i in ids])
                if documents:
                    got = aligned_score(_sentences_of(aligned, ids))
                    scores[split][group].update({"aligned_chrf++": round(got["chrf++"], 2),
                                                 "resegmented": got["resegmented"]})
    return scores, signatures


def split_groups(data_info, split):
    """The segment numbers of a test set: all, each language group, unseen, each language."""
    segments = data_info["segments"]
    idx = [i for i, s in enumerate(segments) if s["split"] == split]
    by_lang = {lang: [i for i in idx if segments[i]["lang"] == lang] for lang in data_info["languages"]}
    groups = {"all": idx}
    for lang, ids in by_lang.items():
        groups.setdefault(data_info["groups"][lang], []).extend(ids)
    groups.setdefault("unseen", [i for i in idx if segments[i]["lang"] not in data_info["doc_languages"]])
    groups.update(by_lang)
    return groups


def reference_documents(work, data_info):
    """Each test segment's reference sentences (None for data prepared before they were kept)."""
    if "ref_sentences" not in data_info:
        return None
    sentences, lines = (work / "data" / "raw" / name for name in data_info["ref_sentences"])
    return read_sentence_documents(sentences, lines)


def _sentences_of(aligned, ids):
    """The aligned sentence pairs of the documents ``ids``."""
    keep = set(ids)
    chosen = [k for k, d in enumerate(aligned.documents) if d in keep]
    return type(aligned)([aligned.hypotheses[k] for k in chosen], [aligned.references[k] for k in chosen],
                         [aligned.documents[k] for k in chosen], [d for d in aligned.resegmented if d in keep])


def ci95_vs_split(work, data_info, hyps, split_hyps, split="chapter", group="all", separator=None):
    """The paired bootstrap 95% interval (``fairseq_relpos.bootstrap``: 1,000 resamples of
    documents, seed 12345) of aligned ChrF++ of ``hyps`` minus that of ``split_hyps`` (the
    ``split`` mode's outputs of the same segments) on one test set and group: ``[low, high]``."""
    ref_docs = reference_documents(work, data_info)
    if ref_docs is None:
        raise RuntimeError("the data was prepared without reference sentences (data/raw/eval.lines): prepare it again")
    ids = split_groups(data_info, split)[group]
    mine, theirs = (align_sentences([h[i] for i in ids], [ref_docs[i] for i in ids], separator)
                    for h in (hyps, split_hyps))
    low, high = paired_bootstrap(mine.hypotheses, theirs.hypotheses, mine.references, groups=mine.documents)["ci95"]
    return [round(low, 2), round(high, 2)]


def run_on(work, cell, data_info):
    """Why a model's output is long, per test set, from its ``generate.txt``: the share of
    hypotheses cut at the length cap they had (fairseq sets one per batch, ``--max-len-a`` times
    the batch's longest source plus ``--max-len-b``: the batches are made again as
    fairseq-generate made them), the share that reached their own source's cap (a document
    batched with a longer one may run past it: the figure this study reported as "at cap"
    before), and the share of word 4-grams that repeat one
    earlier in the same hypothesis (a decoder that lost its place loops), beside the same share
    in the references."""
    from .ct2_check import fairseq_batches

    gen = dir_of(work, cell) / "generate.txt"
    if not gen.is_file():
        return None
    command = gen.read_text().split("\n", 1)[0].split()

    def option(name):
        return command[len(command) - 1 - command[::-1].index(name) + 1]
    a, b = (float(option(f"--max-len-{x}")) for x in "ab")
    steps = {}
    for line in read_lines(gen):
        if line.startswith("P-"):
            head, _, scores = line.partition("\t")
            steps.setdefault(int(head[2:]), len(scores.split()))
    _, hyps, _ = read_generate(gen)
    if "--gen-subset test1 " in " ".join(command) + " ":
        data_info = sentences_only(data_info)
    refs = read_lines(work / "data" / "raw" / data_info.get("ref_file", "eval.tgt"))
    segments = data_info["segments"]
    raw = work / "data" / "raw"
    sources, targets = ([line.split() for line in read_lines(raw / f"eval.{side}")][:len(hyps)] for side in ("src", "tgt"))
    own = [int(a * (len(s) + 1) + b) for s in sources]
    cap = [None] * len(hyps)
    for batch in fairseq_batches(sources, targets, int(option("--batch-size"))):
        longest = max(len(sources[i]) + 1 for i in batch)
        for i in batch:
            cap[i] = min(int(a * longest + b), GEN_POSITIONS - 1)

    out = {}
    for split in dict.fromkeys(seg["split"] for seg in segments):
        idx = [i for i, seg in enumerate(segments) if seg["split"] == split]
        rep_h, rep_r = (tuple(map(sum, zip(*(repeated(t[i]) for i in idx)))) for t in (hyps, refs))
        out[split] = {"at_cap": round(sum(steps[i] > cap[i] for i in idx) / len(idx), 3),
                      "at_own_cap": round(sum(steps[i] > own[i] for i in idx) / len(idx), 3),
                      "repeated_4grams": round(rep_h[0] / max(1, rep_h[1]), 3),
                      "repeated_4grams_ref": round(rep_r[0] / max(1, rep_r[1]), 3)}
    return out


def repeated(text):
    """(repeated word 4-grams, 4-grams) of one text: a 4-gram repeats when an earlier one equals it."""
    words = text.split()
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    return len(grams) - len(set(grams)), len(grams)
