#!/usr/bin/env python
"""fairseq beam search against the same weights exported to CTranslate2 (float32 and int8).

    python benchmarks/ct2_speed.py --quick    # a few minutes: tiny training, few inputs
    OMP_WAIT_POLICY=PASSIVE python benchmarks/ct2_speed.py   # the table in benchmarks/README.md

(``OMP_WAIT_POLICY=PASSIVE`` on a shared machine: see benchmarks/README.md.)

Two shapes, both RoPE (``transformer_rope``, interleaved, half the head rotated):

* quickstart: 3+3 layers, d 128, FFN 256, 4 heads, shared embeddings, GELU, trained here on the
  toy corpus (sentences plus pseudo-documents, as in examples/quickstart.sh), so ChrF++ of both
  decoders means something;
* IndicTrans2-distilled: 18+18 layers, d 512, FFN 2048, 8 heads, pre-norm, layernorm_embedding,
  GELU, separate 32,000-word dictionaries; random weights (training it is out of reach on a
  CPU), so every input decodes exactly ``int(1.2 * (source length + 1) + 10) + 1`` steps in
  both (end of sentence is forbidden until then) and no ChrF++ is given.

fairseq is what ``fairseq-generate`` runs (``task.build_generator`` + ``inference_step``, the
same batches: sentences 16 at a time, documents one at a time); CTranslate2 runs
``fairseq_relpos.ct2.translate.translate_batch`` on the exported directory. Beam 4, length
penalty 1, ``--max-len-a 1.2 --max-len-b 10``. fairseq runs with ``torch.set_num_threads(n)``,
CTranslate2 with ``intra_threads=n``. Every repeat runs the three decoders in turn (fairseq,
CT2 float32, CT2 int8), so load from other processes on a shared machine falls on all alike;
the table gives medians of wall time and of process CPU time, and fairseq/CT2 ratios.
"""
import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import logging  # noqa: E402

logging.disable(logging.WARNING)

import ctranslate2  # noqa: E402
import torch  # noqa: E402
from fairseq import checkpoint_utils, options, tasks  # noqa: E402
from fairseq.data import Dictionary, data_utils  # noqa: E402
from fairseq.dataclass.utils import convert_namespace_to_omegaconf  # noqa: E402

from fairseq_relpos.ct2 import export as export_ct2, translate as ct2_translate  # noqa: E402
from fairseq_relpos.cli.main import main as _relpos  # noqa: E402
from fairseq_relpos.scoring import evaluate  # noqa: E402

PLUGIN = str(REPO / "fairseq_relpos")
BEAM, MAX_LEN_A, MAX_LEN_B = 4, 1.2, 10
SENTENCE_BATCH = 16
UPDATES = {False: 150, True: 100}  # quickstart-shape training: full run, --quick
QUICKSTART_SHAPE = ["--encoder-layers", "3", "--decoder-layers", "3", "--encoder-embed-dim", "128",
                    "--decoder-embed-dim", "128", "--encoder-ffn-embed-dim", "256", "--decoder-ffn-embed-dim", "256",
                    "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
                    "--share-all-embeddings", "--activation-fn", "gelu"]
IT2_SHAPE = dict(encoder_layers=18, decoder_layers=18, encoder_embed_dim=512, decoder_embed_dim=512,
                 encoder_ffn_embed_dim=2048, decoder_ffn_embed_dim=2048, encoder_attention_heads=8,
                 decoder_attention_heads=8)
IT2_VOCAB = 32000


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def relpos(argv):
    """A fairseq-relpos command; its report goes to stderr, leaving stdout to the table."""
    with contextlib.redirect_stdout(sys.stderr):
        return _relpos(argv)


def cli(tool, *args, logfile):
    cmd = [sys.executable, "-m", f"fairseq_cli.{tool}", *map(str, args)]
    with open(logfile, "a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)


def train_quickstart(work, updates):
    """The toy corpus, pseudo-documents, binarised data and a RoPE model trained from scratch.
    One model for both modes: a run asking for more updates than were made resumes training
    (fairseq-train continues from checkpoint_last.pt)."""
    corpus, data, save = work / "corpus", work / "bin", work / "rope"
    logfile = work / "train.log"
    if not (corpus / "test.src").exists():
        relpos(["toy-corpus", str(corpus)])
        relpos(["make-docs", str(corpus / "train-docs"), str(corpus / "docs"), "--ids",
                str(corpus / "train-docs.ids"), "--budget", "120", "--min-budget", "30"])
        for side in ("src", "tgt"):
            (corpus / f"all.{side}").write_text((corpus / f"train.{side}").read_text() + (corpus / f"docs.{side}").read_text())
    if not (data / "dict.src.txt").exists():
        cli("preprocess", "--source-lang", "src", "--target-lang", "tgt", "--joined-dictionary", "--workers", "2",
            "--trainpref", corpus / "all", "--validpref", corpus / "valid", "--destdir", data, logfile=logfile)
    ckpt = save / "checkpoint_last.pt"
    if not ckpt.exists() or checkpoint_utils.load_checkpoint_to_cpu(str(ckpt))["optimizer_history"][-1]["num_updates"] < updates:
        log(f"training the quickstart-shape RoPE model (to {updates} updates)")
        cli("train", data, "--user-dir", PLUGIN, "--arch", "transformer_rope", *QUICKSTART_SHAPE,
            "--max-source-positions", "1024", "--max-target-positions", "1024",
            "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr-scheduler", "inverse_sqrt",
            "--warmup-updates", "200", "--lr", "0.002", "--criterion", "label_smoothed_cross_entropy",
            "--label-smoothing", "0.1", "--dropout", "0.1", "--max-tokens", "4000", "--max-update", updates,
            "--no-epoch-checkpoints", "--seed", "1", "--num-workers", "0", "--save-dir", save, logfile=logfile)
    return corpus, data, ckpt


def export(ckpt, outdir, quantization, data):
    """Exported afresh on every run: the checkpoint may have trained further since."""
    args = ["export", str(ckpt), str(outdir), "--data", str(data), "--beam", str(BEAM),
            "--max-len-a", str(MAX_LEN_A), "--max-len-b", str(MAX_LEN_B), "--force"]
    if quantization:
        args += ["--quantization", quantization]
    assert relpos(args) == 0, f"export to {outdir} failed"
    return outdir


def random_it2(work):
    """The IndicTrans2-distilled shape with random weights, its task and its exports."""
    data = work / "it2-dicts"
    data.mkdir(parents=True, exist_ok=True)
    for lang, prefix in (("src", "s"), ("tgt", "t")):
        d = Dictionary()
        for i in range(IT2_VOCAB - len(d)):
            d.add_symbol(f"{prefix}{i}")
        d.save(str(data / f"dict.{lang}.txt"))
    argv = [str(data), "--user-dir", PLUGIN, "--arch", "transformer_rope", "--task", "translation",
            "--source-lang", "src", "--target-lang", "tgt", "--encoder-normalize-before",
            "--decoder-normalize-before", "--layernorm-embedding", "--activation-fn", "gelu",
            "--max-source-positions", "4096", "--max-target-positions", "4096"]
    for key, value in IT2_SHAPE.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(1)
    model = task.build_model(cfg.model).eval()
    decoding = ct2_translate.decoding_config(BEAM, MAX_LEN_A, MAX_LEN_B)
    dirs = {}
    for quantization in (None, "int8"):
        out = work / f"it2-ct2-{quantization or 'float32'}"
        export_ct2.save(export_ct2.model_spec(model, task), out, quantization=quantization, force=True,
                        extra_files={ct2_translate.DECODING_FILE: json.dumps(decoding)})
        dirs[quantization or "float32"] = out
    return task, model, dirs


def random_inputs(task, lengths, seed):
    g = torch.Generator().manual_seed(seed)
    d = task.source_dictionary
    return [" ".join(d[i] for i in torch.randint(d.nspecial, len(d), (n,), generator=g).tolist()) for n in lengths]


class Fairseq:
    """fairseq-generate's search, in-process."""

    def __init__(self, task, model, fixed_length=False):
        self.task, self.model, self.fixed = task, model, fixed_length

    def __call__(self, lines, batch_size):
        d, out = self.task.source_dictionary, []
        for batch in chunks(lines, batch_size):
            tokens = [d.encode_line(line, add_if_not_exist=False, append_eos=True).long() for line in batch]
            src_len = max(len(t) for t in tokens)
            gen_args = Namespace(beam=BEAM, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B, lenpen=1.0,
                                 min_len=int(MAX_LEN_A * src_len + MAX_LEN_B) if self.fixed else 1)
            generator = self.task.build_generator([self.model], gen_args)
            sample = {"net_input": {"src_tokens": data_utils.collate_tokens(tokens, d.pad(), d.eos(), left_pad=True),
                                    "src_lengths": torch.tensor([len(t) for t in tokens])}}
            with torch.inference_mode():
                hypos = self.task.inference_step(generator, [self.model], sample)
            out += [self.task.target_dictionary.string(h[0]["tokens"].int()) for h in hypos]
        return out


class CT2:
    """The exported model through ct2_translate (fixed_length: exactly fairseq's max_len + 1
    decoder steps, as fairseq with min_len = max_len runs)."""

    def __init__(self, model_dir, threads, fixed_length=False):
        self.translator = ctranslate2.Translator(str(model_dir), device="cpu", inter_threads=1, intra_threads=threads)
        self.decoding = ct2_translate.load_decoding(model_dir)
        self.fixed = fixed_length

    def __call__(self, lines, batch_size):
        out = []
        for batch in chunks(lines, batch_size):
            sources = [line.split() for line in batch]
            if self.fixed:
                steps = ct2_translate.max_length(self.decoding, [len(s) for s in sources]) + 1
                results = self.translator.translate_batch(sources, beam_size=BEAM, max_input_length=0,
                                                          min_decoding_length=steps, max_decoding_length=steps)
                out += [" ".join(r.hypotheses[0]) for r in results]
            else:
                out += [" ".join(tokens) for tokens, _ in ct2_translate.translate_batch(self.translator, sources, self.decoding)]
        return out


def chunks(lines, size):
    return [lines[i:i + size] for i in range(0, len(lines), size)]


def timed(fn, lines, batch_size):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(lines, batch_size)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def measure(name, engines, inputs, threads, repeats):
    """{(input set, threads, engine): {wall: [...], cpu: [...], out: [...]}}, interleaved."""
    results = {}
    for n in threads:
        decoders = {label: make(n) for label, make in engines.items()}
        torch.set_num_threads(n)
        first, batch_size = next(iter(inputs.values()))
        for label, fn in decoders.items():  # warm-up: first calls allocate
            fn(first[:2], batch_size)
        for r in range(repeats):
            for set_name, (lines, batch_size) in inputs.items():
                for label, fn in decoders.items():
                    wall, cpu, out = timed(fn, lines, batch_size)
                    cell = results.setdefault((set_name, n, label), {"wall": [], "cpu": [], "out": out})
                    cell["wall"].append(wall)
                    cell["cpu"].append(cpu)
                    log(f"{name} {set_name} threads={n} {label}: {wall:.2f}s wall, {cpu:.2f}s cpu")
    return results


def table(name, results, references):
    rows = [f"\n### {name}\n",
            "| inputs | threads | decoder | wall s (median) | fairseq / this, wall | CPU s (median) | fairseq / this, CPU |"
            + (" ChrF++ | same output as fairseq |" if references else ""),
            "|---|---|---|---|---|---|---|" + ("---|---|" if references else "")]
    summary = {}
    for (set_name, n, label), cell in results.items():
        base = results[(set_name, n, "fairseq")]
        wall, cpu = statistics.median(cell["wall"]), statistics.median(cell["cpu"])
        ratio_wall = statistics.median(base["wall"]) / wall
        ratio_cpu = statistics.median(base["cpu"]) / cpu
        row = (f"| {set_name} | {n} | {label} | {wall:.2f} | {ratio_wall:.2f}x | {cpu:.2f} | {ratio_cpu:.2f}x |")
        entry = {"wall_s": wall, "cpu_s": cpu, "speedup_wall": ratio_wall, "speedup_cpu": ratio_cpu,
                 "repeats": len(cell["wall"])}
        if references:
            chrf = evaluate(cell["out"], references[set_name])["overall"]["chrf++"]
            same = sum(a == b for a, b in zip(cell["out"], base["out"])) / len(cell["out"])
            row += f" {chrf:.1f} | {100 * same:.0f}% |"
            entry.update(chrf=chrf, same_as_fairseq=same)
        rows.append(row)
        summary[f"{set_name}/{n}/{label}"] = entry
    return "\n".join(rows), summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny training, few inputs, one repeat")
    parser.add_argument("--work", default=str(REPO / "work" / "ct2_speed"), help="scratch folder (reused)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3, quick 1)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    shared = Path(args.work)
    work = shared / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    repeats = args.repeats or (1 if args.quick else 3)
    threads = [int(t) for t in args.threads.split(",")]
    # inputs: quickstart sentences, documents; IndicTrans2-shape sentences, documents, document length
    n_sent, n_docs, n_it2_sent, n_it2_docs, doc_len = (16, 1, 4, 1, 60) if args.quick else (100, 4, 8, 1, 200)

    corpus, data, ckpt = train_quickstart(shared, UPDATES[args.quick])
    quick_dirs = {q or "float32": export(ckpt, work / f"qs-ct2-{q or 'float32'}", q, data) for q in (None, "int8")}
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)], arg_overrides={"data": str(data)})
    qs_model = models[0].eval()
    read = lambda name: (corpus / name).read_text(encoding="utf-8").splitlines()  # noqa: E731
    inputs = {"sentences": (read("test.src")[:n_sent], SENTENCE_BATCH),
              "documents (doc8)": (read("test-doc8.src")[:n_docs], 1)}
    references = {"sentences": read("test.tgt")[:n_sent], "documents (doc8)": read("test-doc8.tgt")[:n_docs]}
    engines = {"fairseq": lambda n: Fairseq(task, qs_model)}
    engines.update({f"CT2 {q}": (lambda n, d=d: CT2(d, n)) for q, d in quick_dirs.items()})
    qs_results = measure("quickstart", engines, inputs, threads, repeats)

    it2_task, it2_model, it2_dirs = random_it2(work)
    it2_inputs = {"sentences (25 tokens)": (random_inputs(it2_task, [25] * n_it2_sent, 1), SENTENCE_BATCH),
                  f"documents ({doc_len} tokens)": (random_inputs(it2_task, [doc_len] * n_it2_docs, 2), 1)}
    engines = {"fairseq": lambda n: Fairseq(it2_task, it2_model, fixed_length=True)}
    engines.update({f"CT2 {q}": (lambda n, d=d: CT2(d, n, fixed_length=True)) for q, d in it2_dirs.items()})
    it2_results = measure("IndicTrans2 shape", engines, it2_inputs, threads, repeats)

    qs_table, qs_summary = table(f"quickstart shape, trained {UPDATES[args.quick]} updates "
                                 f"({n_sent} sentences, {n_docs} documents)", qs_results, references)
    it2_table, it2_summary = table(f"IndicTrans2-distilled shape, random weights ({n_it2_sent} sentences, "
                                   f"{n_it2_docs} documents, fixed output length)", it2_results, None)
    header = (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
              f"torch {torch.__version__}, ctranslate2 {ctranslate2.__version__}; "
              f"beam {BEAM}, --max-len-a {MAX_LEN_A} --max-len-b {MAX_LEN_B}; {repeats} repeats, interleaved")
    print(header + "\n" + qs_table + "\n" + it2_table)
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "quickstart": qs_summary,
                                               "indictrans2": it2_summary}, indent=2))


if __name__ == "__main__":
    main()
