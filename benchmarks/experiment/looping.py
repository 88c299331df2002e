"""Why the models loop (issue 26 item 5), each question answered by a measurement on the
document evaluation set, cached in the cell's directory (run with ``--looping``):

* **model or search error**: every reference scored by the model (``fairseq-generate
  --score-reference``: its length-normalised log-probability, as the beam search ranks
  hypotheses) against the model's own ``whole`` output. A reference that scores higher than the
  output is a search error (the search missed a better translation); an output that scores
  higher is a model error (the model prefers its loop);
* **the end symbol at the true end**: its log-probability and rank after the whole reference
  (``end_rank``, teacher-forced): a model that ranks it low cannot stop where it should;
* **other searches**: greedy, ``--unnormalized``, ``--lenpen 0.5`` and n-gram blocking
  (``settings.LOOPING_DECODES``, decoded into ``CELL/looping/``);
* the fine-tuning variants (more updates, no label smoothing, earlier base checkpoints:
  ``settings.looping_variants``) are cells of their own.
"""
import json
import subprocess
import sys
import time

from fairseq_relpos.scoring import read_lines

from .doc_decode import checkpoint_of, decode_mode, post_processing
from .doc_eval import doc_eval_dir
from .runner import PLUGIN, REPO, Lock, _env, cell_name, dir_of, key_of, log, run, separated, write_atomic
from .settings import GEN_POSITIONS, SEPARATOR
from .train import positions_args

DIAGNOSIS = "looping-diagnosis.json"


def scored_lines(path):
    """``{id: (score, tokens)}`` of fairseq-generate output: the best hypothesis's score (base 2,
    per token, its H- line) and its tokens with the end (its P- line's positional scores)."""
    scores, tokens = {}, {}
    for line in read_lines(path):
        kind, _, rest = line.partition("-")
        if kind in ("H", "P") and rest.split("\t", 1)[0].isdigit():
            head, _, fields = rest.partition("\t")
            if kind == "H":
                scores.setdefault(int(head), float(fields.split("\t", 1)[0]))
            else:
                tokens.setdefault(int(head), len(fields.split()))
    return {i: (scores[i], tokens[i]) for i in scores}


def diagnose(spec, work, cfg, doc_info, c, threads):
    """``CELL/looping-diagnosis.json``: per document the reference's and the own output's
    length-normalised log-probability, and the end symbol's log-probability and rank at the
    true end; a summary. Decodes the cell's ``whole`` mode first if missing."""
    path = dir_of(work, c) / DIAGNOSIS
    if path.is_file():
        return json.loads(path.read_text())
    lock = Lock(work, f"seed{c['seed']}-{cell_name(key_of(c))}-b{c.get('base_seed', c['seed'])}-diagnosis")
    if not lock.acquire():
        return None
    try:
        if decode_mode(spec, work, cfg, doc_info, c, "whole", threads) is None:
            return None
        ckpt = checkpoint_of(work, c)
        subset = doc_info["subsets"]["separated" if separated(c) else "plain"]
        gen_args, _ = post_processing(spec.gen_args)
        ref_out = dir_of(work, c) / "looping-reference.txt"
        run("generate", [doc_eval_dir(work) / doc_info["bin"], "--user-dir", PLUGIN, "--task", "translation_doc",
                         "--path", ckpt, "--gen-subset", subset, "--score-reference",
                         "--batch-size", cfg.get("gen_batch", 16), *positions_args(GEN_POSITIONS), *gen_args],
                        ref_out, threads)
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.experiment.end_rank", str(ckpt),
                               str(doc_eval_dir(work) / doc_info["bin"]), subset, str(GEN_POSITIONS)],
                              env=_env(threads), cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"end_rank on {ckpt} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        ends = json.loads(proc.stdout.strip().splitlines()[-1])
        reference = scored_lines(ref_out)
        own = scored_lines(dir_of(work, c) / "decodes" / "whole.txt")
        out = summarise(doc_info, reference, own, ends)
        out["end_rank_seconds"] = round(time.time() - start, 1)
        write_atomic(path, json.dumps(out, indent=1) + "\n")
        log(f"seed {c['seed']} {cell_name(key_of(c)):22s} looping diagnosis: search errors "
            f"{out['summary']['search_errors']}, model errors {out['summary']['model_errors']}")
        return out
    finally:
        lock.release()


def summarise(doc_info, reference, own, ends):
    """Per document and in all: which scores higher, the reference or the model's own output
    (base-2 log-probability per token), and the end symbol's rank at the true end."""
    documents = []
    for i, d in enumerate(doc_info["documents"]):
        documents.append({"lang": d["lang"], "name": d["name"], "reference_score": round(reference[i][0], 4),
                          "own_score": round(own[i][0], 4), "reference_tokens": reference[i][1],
                          "own_tokens": own[i][1], "end_logprob": round(ends[i]["logprob"], 4),
                          "end_rank": ends[i]["rank"]})
    n = len(documents)
    ranks = sorted(d["end_rank"] for d in documents)
    summary = {"documents": n,
               "search_errors": sum(d["reference_score"] > d["own_score"] for d in documents),
               "model_errors": sum(d["reference_score"] <= d["own_score"] for d in documents),
               "end_rank_median": ranks[n // 2] if n % 2 else (ranks[n // 2 - 1] + ranks[n // 2]) / 2,
               "end_rank_1": sum(r == 1 for r in ranks), "separator": SEPARATOR}
    return {"summary": summary, "documents": documents}
