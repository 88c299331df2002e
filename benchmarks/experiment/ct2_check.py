"""The fine-tuned RoPE cells decoded again through CTranslate2, the way they deploy
(``fairseq-relpos export``): the grid's search (beam, ``--max-len-a/-b``) in the batches
fairseq-generate makes, scored as the grid scores, beside the plugin's decoding of the same
checkpoint. Cached per cell in ``ct2.json``; the export is removed afterwards.

The grid's headline decodes every cell with one decoder, the plugin's generator, so that the
differences between cells are the models'; this check says how far the deployment path's
numbers are from those."""
import json
import shutil
import subprocess
import sys
import time

from fairseq_relpos.scoring import read_generate, read_lines

from .decode import score_segments
from .runner import REPO, Lock, _env, cell_name, dir_of, key_of, log, relpos, separated, write_atomic
from .settings import GEN_POSITIONS

RESULT = "ct2.json"


def checkable(work, c):
    """Whether a finished cell is one this check decodes: fine-tuned RoPE with its checkpoint,
    scored on the whole evaluation set (not a separator cell, scored on its sentences alone)."""
    return (c["positions"] == "rope" and c["regime"] != "none" and not separated(c)
            and (dir_of(work, c) / "checkpoint_last.pt").is_file())


def check_cell(spec, work, cfg, data_info, c, threads):
    """``ct2.json`` of one cell (made once, under a lock shared by runners); None while another
    runner makes it."""
    directory = dir_of(work, c)
    path = directory / RESULT
    if path.is_file():
        return json.loads(path.read_text())
    lock = Lock(work, f"seed{c['seed']}-{cell_name(key_of(c))}-ct2")
    if not lock.acquire():
        return None
    try:
        if path.is_file():
            return json.loads(path.read_text())
        model = directory / "ct2"
        if model.exists():  # an export left by an interrupted check: ours to replace
            shutil.rmtree(model)
        relpos("export", [directory / "checkpoint_last.pt", model, "--data", work / "data" / "base-bin",
                          "--beam", cfg["beam"], "--max-len-a", cfg.get("max_len_a", 1.2),
                          "--max-len-b", cfg.get("max_len_b", 10)], directory / "export.log", threads)
        hyp_file = directory / "ct2.txt"
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.experiment.ct2_check", str(model),
                               str(work / "data" / "raw"), str(cfg.get("gen_batch", 16)), str(threads),
                               "sentencepiece" if "sentencepiece" in spec.gen_args else "none", str(hyp_file)],
                              env=_env(threads), cwd=REPO, capture_output=True, text=True)
        wall = time.time() - start
        if proc.returncode != 0:
            raise RuntimeError(f"CTranslate2 decoding of {directory} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        hyps = read_lines(hyp_file)
        scores, _ = score_segments(work, data_info, hyps, hyp_file)
        _, plugin_hyps, _ = read_generate(directory / "generate.txt")
        same = {}
        for split in scores:
            idx = [i for i, s in enumerate(data_info["segments"]) if s["split"] == split]
            same[split] = round(sum(hyps[i] == plugin_hyps[i] for i in idx) / len(idx), 3)
        out = {"scores": scores, "identical_to_plugin": same, "decode_seconds": round(wall, 1),
               "plugin_decode_seconds": c["decode_seconds"], "threads": threads}
        write_atomic(path, json.dumps(out, indent=1) + "\n")
        shutil.rmtree(model)
        log(f"seed {c['seed']} {cell_name(key_of(c)):22s} CTranslate2: {list(scores)[-1]} all "
            f"{scores[list(scores)[-1]]['all']['chrf++']:.1f} (plugin {c['scores'][list(scores)[-1]]['all']['chrf++']:.1f}), "
            f"decode {wall:.0f}s (plugin {c['decode_seconds']:.0f}s)")
        return out
    finally:
        lock.release()


def fairseq_batches(sources, targets, size):
    """The batches fairseq-generate makes of a test set with ``--batch-size size``: indices
    sorted (stably) by target length, then by source length, cut into runs of ``size``. The
    batch decides the length cap (its longest source), so CTranslate2 gets the same ones."""
    order = sorted(range(len(sources)), key=lambda i: len(targets[i]))
    order = sorted(order, key=lambda i: len(sources[i]))
    return [order[i:i + size] for i in range(0, len(order), size)]


def detokenize(pieces, post_process):
    text = " ".join(pieces)
    if post_process == "sentencepiece":  # as fairseq's --post-process sentencepiece
        text = text.replace(" ", "").replace("\u2581", " ")
    return text.strip()


def decode(model, raw, batch, threads, post_process, out):
    import ctranslate2

    from fairseq_relpos.ct2.translate import load_decoding, translate_batch
    translator = ctranslate2.Translator(model, device="cpu", intra_threads=threads)
    decoding = load_decoding(model)
    sources = [line.split() for line in read_lines(f"{raw}/eval.src")]
    targets = [line.split() for line in read_lines(f"{raw}/eval.tgt")]
    hyps = [None] * len(sources)
    for ids in fairseq_batches(sources, targets, batch):
        for i, (pieces, _) in zip(ids, translate_batch(translator, [sources[i] for i in ids], decoding,
                                                       max_target_positions=GEN_POSITIONS)):
            hyps[i] = detokenize(pieces, post_process)
    with open(out, "w", encoding="utf-8") as f:
        f.write("".join(h + "\n" for h in hyps))


if __name__ == "__main__":
    model_dir, raw_dir, size, n_threads, post, out_file = sys.argv[1:]
    decode(model_dir, raw_dir, int(size), int(n_threads), post, out_file)
