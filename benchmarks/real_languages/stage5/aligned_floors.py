"""Sentence-aligned ChrF++ of the reference-only constructions of fairseq_relpos.floors, on the
study's document evaluation set: each construction re-cut against the reference sentences by
minimum edit distance (as a document output without separators is), scored sentence by sentence.
Usage: python benchmarks/real_languages/stage5/aligned_floors.py WORK/data/doc-eval
"""
import json, sys
from pathlib import Path
from fairseq_relpos.floors import constructions
from fairseq_relpos.scoring import align_sentences, aligned_score, normalized

if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "doc-eval.json").is_file():
    sys.exit("usage: aligned_floors.py WORK/data/doc-eval (the folder holding doc-eval.json)")
root = Path(sys.argv[1])
info = json.loads((root / "doc-eval.json").read_text())
sents = (root / "corpus" / "test-chapter.tgt-sentences").read_text().splitlines()
docs, k = [], 0
for d in info["documents"]:
    docs.append(normalized(sents[k:k + d["sentences"]]))
    k += d["sentences"]
assert k == len(sents)
texts, made = constructions(docs, [d["lang"] for d in info["documents"]])
made["reference"] = dict(enumerate(texts))
for name, hyps in made.items():
    ids = sorted(hyps)
    a = align_sentences([hyps[i] for i in ids], [docs[i] for i in ids])
    print(f"{name}: sentence-aligned ChrF++ {aligned_score(a)['chrf++']:.1f} ({len(ids)} documents)", flush=True)
