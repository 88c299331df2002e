"""A cell's decodes of the document evaluation set in each mode (``settings.MODES``), cached
under ``CELL/decodes/``: ``MODE.txt`` (fairseq-generate's output, in model tokens: the grid's
``--post-process`` is applied here, sentence by sentence) and ``MODE.json`` (how it ran), and
their scores and run-on figures, ``scores.json``, made again when an output or the scoring
changes (``--rescore`` forces it).

Length caps: ``aligned``, ``window`` and ``split`` give every document (``split`` and ``window``:
every sentence) its own cap from its own source (``--max-len-a``·source + ``--max-len-b``);
``whole`` is fairseq's search, whose cap is its batch's (from the batch's longest source), so a
short document decoded beside a long one may run past its own: its run-on figures count a
document at the cap it had, reconstructed from fairseq-generate's batches.
"""
import json
import time

from fairseq_relpos.documents.sentences import split_sentences
from fairseq_relpos.scoring import read_generate, read_lines

from .ct2_check import detokenize, fairseq_batches
from .decode import reference_documents, repeated
from .doc_eval import doc_eval_dir
from .doc_scores import BASELINE, context_layout, decodes_layout, doc_data
from .runner import PLUGIN, REPO, Lock, cell_name, dir_of, key_of, log, plugin_fingerprint, run, separated, write_atomic
from .settings import GEN_POSITIONS, MODES, SEPARATOR
from .train import positions_args

SCORING = "nfkc, whole-document and sentence-aligned ChrF++ (fairseq_relpos.scoring), paired bootstrap"


def repetition_available():
    """Whether this checkout has the plugin's repetition controls (``--no-repeat-ngram-size``
    that works on the CPU, ``--repetition-penalty``)."""
    return (REPO / "fairseq_relpos" / "generation" / "repetition.py").is_file()


def checkpoint_of(work, c):
    """The checkpoint a cell decodes, or None (the switch alone keeps none; a decoding variant
    decodes its plain cell's)."""
    if c["regime"] == "none":
        if c["positions"] != "sinusoidal":
            return None
        path = work / f"seed{c.get('base_seed', c['seed'])}" / "base" / "checkpoint_best.pt"
    elif c["train"].get("reused_from"):
        return None
    else:
        path = dir_of(work, c) / "checkpoint_last.pt"
    return path if path.is_file() else None


def post_processing(gen_args):
    """``(gen_args without --post-process, the post-processing)``: the modes' outputs stay in
    model tokens, so that each sentence's length can be counted against its cap."""
    args, post = list(map(str, gen_args)), "none"
    if "--post-process" in args:
        i = args.index("--post-process")
        post = args[i + 1]
        del args[i:i + 2]
    return args, post


def decode_mode(spec, work, cfg, doc_info, c, mode, threads, options=None, directory="decodes"):
    """Decode the document evaluation set with cell ``c``'s checkpoint in ``mode`` (a
    ``settings.MODES`` name, or with ``options`` any whole-document search); cached in
    ``CELL/DIRECTORY/MODE.{txt,json}``. Returns the JSON, or None when another runner holds it."""
    out = dir_of(work, c) / directory
    done = out / f"{mode}.json"
    if done.is_file():
        return json.loads(done.read_text())
    lock = Lock(work, f"seed{c['seed']}-{cell_name(key_of(c))}-b{c.get('base_seed', c['seed'])}-{directory}-{mode}")
    if not lock.acquire():
        return None
    try:
        if done.is_file():
            return json.loads(done.read_text())
        ckpt = checkpoint_of(work, c)
        if ckpt is None:
            raise RuntimeError(f"{dir_of(work, c)}: no checkpoint to decode")
        out.mkdir(parents=True, exist_ok=True)
        args = list(options if options is not None else MODES[mode]["args"])
        plain = not separated(c) and (options is not None or mode == "whole")  # as the model was fine-tuned
        subset = doc_info["subsets"]["plain" if plain else "separated"]
        gen_args, _ = post_processing(spec.gen_args)
        start = time.time()
        run("generate", [doc_eval_dir(work) / doc_info["bin"], "--user-dir", PLUGIN, "--task", "translation_doc",
                         "--path", ckpt, "--gen-subset", subset, "--beam", cfg["beam"],
                         "--batch-size", cfg.get("gen_batch", 16), "--max-len-a", cfg.get("max_len_a", 1.2),
                         "--max-len-b", cfg.get("max_len_b", 10), *positions_args(GEN_POSITIONS), *gen_args,
                         "--doc-separator", SEPARATOR, *args], out / f"{mode}.txt", threads)
        info = {"mode": mode, "args": [str(a) for a in args], "subset": subset,
                "decode_seconds": round(time.time() - start, 1), "threads": threads, "plugin": plugin_fingerprint()}
        write_atomic(done, json.dumps(info, indent=1) + "\n")
        log(f"seed {c['seed']} {cell_name(key_of(c)):22s} {directory} {mode}: {info['decode_seconds']:.0f}s")
        return info
    finally:
        lock.release()


def read_outputs(path, post_process):
    """Each document's output from fairseq-generate's ``path``: ``(sentences (text), sentence
    lengths in model tokens, separators emitted)``, in id order."""
    _, hyps, _ = read_generate(path, references=False)
    out = []
    for hyp in hyps:
        parts = token_sentences(hyp.split())
        out.append(([detokenize(p, post_process) for p in parts], [len(p) for p in parts], len(parts) - 1))
    return out


def token_sentences(tokens):
    """The tokens between separators (empty where two meet or one ends the document)."""
    return [sentence.split() for sentence in split_sentences(" ".join(tokens), SEPARATOR)]


def fell_back(path):
    """How many documents ``--doc-fallback`` decoded again (its log lines), or None without one."""
    text = path.read_text(errors="replace")
    if "--doc-fallback" not in text.split("\n", 1)[0]:
        return None
    return text.count("): decoded again with --doc-decoding ")


def source_sentences(work, doc_info):
    """Each document's tags and sentence lengths in model tokens (the separated source)."""
    out = []
    for line in read_lines(doc_eval_dir(work) / "sep.src"):
        parts = token_sentences(line.split()[2:])
        out.append((2, [len(p) for p in parts if p]))
    return out


def caps_at(doc_info, sources, mode_args, subset, cfg):
    """Each document's cap (tokens before the end) in a mode, or for ``split`` and ``window`` each
    of its sentences' caps, as the plugin's generator sets them (``whole``: its batch's)."""
    a, b = cfg.get("max_len_a", 1.2), cfg.get("max_len_b", 10)
    limit = GEN_POSITIONS - 1

    def cap(length, required=0):  # sentence_count.row_caps
        return max(min(int(a * length + b), limit), 2 * required + 1)
    decoding = mode_args[mode_args.index("--doc-decoding") + 1] if "--doc-decoding" in mode_args else "whole"
    if decoding in ("split", "window"):
        return [[cap(tags + n + 1) for n in lengths] for tags, lengths in sources]
    plain = subset == doc_info["subsets"]["plain"]
    src = [tags + sum(lengths) + (0 if plain else len(lengths) - 1) + 1 for tags, lengths in sources]
    if decoding == "aligned":
        return [cap(n, len(lengths) - 1) for n, (_, lengths) in zip(src, sources)]
    tgt = [[None] * (d["tokens"] + d["sentences"]) for d in doc_info["documents"]]
    caps = [None] * len(src)
    for batch in fairseq_batches([[None] * n for n in src], tgt, cfg.get("gen_batch", 16)):
        longest = max(src[i] for i in batch)
        for i in batch:
            caps[i] = min(int(a * longest + b), limit)
    return caps


def run_on_of(outputs, caps, references, fallen=None):
    """The run-on figures of one mode: documents whose output reached its cap (``split`` and
    ``window``: a sentence of it reached its own; then also the share of sentences that did),
    repeated word 4-grams in the outputs and in the references, and separators per document
    against the source's."""
    at_cap, sentences_capped, sentences = 0, 0, 0
    for (_, lengths, separators), cap in zip(outputs, caps):
        if isinstance(cap, list):
            hits = sum(n >= c for n, c in zip(lengths, cap))
            sentences_capped += hits
            sentences += len(cap)
            at_cap += hits > 0
        else:
            at_cap += sum(lengths) + separators >= cap
    rep_h = [sum(x) for x in zip(*(repeated(" ".join(s)) for s, _, _ in outputs))]
    rep_r = [sum(x) for x in zip(*(repeated(" ".join(r)) for r in references))]
    out = {"at_cap": round(at_cap / len(outputs), 3), "repeated_4grams": round(rep_h[0] / max(1, rep_h[1]), 3),
           "repeated_4grams_ref": round(rep_r[0] / max(1, rep_r[1]), 3),
           "sentence_count_right": round(sum(s + 1 == len(r) for (_, _, s), r in zip(outputs, references))
                                         / len(outputs), 3)}
    if sentences:
        out["sentences_at_cap"] = round(sentences_capped / sentences, 3)
    if fallen is not None:
        out["fell_back"] = fallen
    return out


def cell_decodes(spec, work, cfg, data_info, doc_info, c, rescore=False, directory="decodes"):
    """``{"decodes": {mode: {"scores", "run_on"}}, "context": ...}`` of a cell's finished decodes
    (``scores.json``, made again when the outputs or the scoring changed, or with ``rescore``);
    None without any."""
    out = dir_of(work, c) / directory
    done = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.stem != "scores"}
    if not done:
        return None
    key = {"scoring": SCORING, "outputs": {m: [(out / f"{m}.txt").stat().st_size, (out / f"{m}.txt").stat().st_mtime_ns]
                                           for m in sorted(done)}}
    split = dir_of(work, c) / "decodes" / f"{BASELINE}.txt"  # the looping searches' baseline
    split = split if directory != "decodes" and split.is_file() else None
    if split:
        key["baseline"] = [split.stat().st_size, split.stat().st_mtime_ns]
    cache = out / "scores.json"
    if cache.is_file() and not rescore:
        cached = json.loads(cache.read_text())
        if cached["key"] == json.loads(json.dumps(key)):
            return cached["result"]
    _, post = post_processing(spec.gen_args)
    data = doc_data(data_info, doc_info)
    references = reference_documents(work, data)
    langs = [d["lang"] for d in doc_info["documents"]]
    sources = source_sentences(work, doc_info)
    outputs, run_on = {}, {}
    for mode, info in done.items():
        path = out / f"{mode}.txt"
        outputs[mode] = read_outputs(path, post)
        if len(outputs[mode]) != len(references):
            raise RuntimeError(f"{path}: {len(outputs[mode])} outputs for {len(references)} documents")
        caps = caps_at(doc_info, sources, info["args"], info["subset"], cfg)
        run_on[mode] = run_on_of(outputs[mode], caps, references, fell_back(path))
    texts = {mode: [s for s, _, _ in docs] for mode, docs in outputs.items()}
    baseline = [s for s, _, _ in read_outputs(split, post)] if split else None
    layout = decodes_layout(work, data, texts, baseline)
    for mode in layout:
        layout[mode]["run_on"] = {doc_info["settings"]["name"]: run_on[mode]}
        layout[mode]["decode_seconds"] = done[mode]["decode_seconds"]
    result = {"decodes": layout, "context": context_layout(spec.context, langs, references, texts)}
    write_atomic(cache, json.dumps({"key": key, "result": result}, indent=1, ensure_ascii=False) + "\n")
    return result
