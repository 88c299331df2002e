"""The document evaluation set of the decoding modes, and the sentences of the older evaluation
set's documents (for ``--rescore``); both built after the fact, so that a work directory whose
cells were decoded before either existed gains them without training anything again.

``data/doc-eval/`` holds every document of the corpus's document evaluation split
(``Corpus.doc_eval``: the Bible's 24 test chapters, or its N shortest a language under
``--quick``) written again with :data:`~.settings.SEPARATOR` between the sentences on both
sides and encoded with the model's own tokeniser (the SentencePiece model of ``data/raw/corpus``,
not trained again), binarised with the base's dictionaries: subset ``test`` with the separators
in the source, ``test1`` without them (what models fine-tuned without separators read, as in
the older evaluation set). ``refs.txt`` holds each document's reference sentences joined by
the separator: the sentence references of the aligned scores.
"""
import json
import shutil

from fairseq_relpos.documents.tags import split_tags
from fairseq_relpos.scoring import read_lines

from .data import write_lines
from .runner import log, run, wait_for, write_atomic
from .settings import SEPARATOR

JOIN = f" {SEPARATOR} "


def doc_eval_dir(work):
    return work / "data" / "doc-eval"


def doc_eval_settings(cfg):
    return dict(cfg["doc_eval"], separator=SEPARATOR)


def prepare_doc_eval(spec, work, cfg, args, threads):
    """``data/doc-eval/doc-eval.json`` (built once, under a lock): the documents (language,
    name, sentences, source tokens) and where their files are. A directory built with other
    settings is an error naming it."""
    out = doc_eval_dir(work)
    done = out / "doc-eval.json"
    if done.is_file() and json.loads(done.read_text())["settings"] != doc_eval_settings(cfg):
        raise SystemExit(f"{out} was built with other settings ({done}); move it away to build it again")
    return wait_for(work, "doc-eval", done, lambda: _prepare(spec, work, cfg, args, threads, out, done))


def shortest_per_language(src, limit):
    """Line indices: every line, or the ``limit`` shortest sources of each language (the same
    English documents in every language), in file order."""
    if limit is None:
        return list(range(len(src)))
    by_lang = {}
    for i, line in enumerate(src):
        by_lang.setdefault(split_tags(line)[0][1], []).append(i)
    return sorted(i for ids in by_lang.values() for i in sorted(ids, key=lambda i: (len(src[i].split()), i))[:limit])


def _prepare(spec, work, cfg, args, threads, out, done):
    if out.exists():
        shutil.rmtree(out)  # an unfinished build starts again
    out.mkdir(parents=True)
    settings = doc_eval_settings(cfg)
    corpus, encoded = spec.write_separated(out / "corpus", cfg, args, SEPARATOR, work / "data" / "raw" / "corpus",
                                           [settings["split"]], settings.get("corpus"))
    raw_src, raw_tgt = (read_lines(p) for p in corpus.files(settings["split"]))
    src, tgt = (read_lines(p) for p in encoded(settings["split"]))
    keep = shortest_per_language(raw_src, settings.get("docs"))
    names = json.loads((corpus.root / "corpus.json").read_text()).get("test_documents", {}).get(settings["split"])
    per_lang = len(raw_src) // len(corpus.targets)
    documents = []
    for i in keep:
        tags, body = split_tags(raw_src[i])
        sentences = raw_tgt[i].split(JOIN)
        if len(body.split(JOIN)) != len(sentences):
            raise RuntimeError(f"{corpus.files(settings['split'])[0]} line {i + 1}: {len(body.split(JOIN))} source "
                               f"and {len(sentences)} target sentences")
        documents.append({"lang": tags[1], "name": names[i % per_lang] if names else str(i % per_lang),
                          "sentences": len(sentences), "src_tokens": len(src[i].split()),
                          "tokens": len(tgt[i].split()) - (len(sentences) - 1)})
    plain = [" ".join(t for t in src[i].split() if t != SEPARATOR) for i in keep]
    for name, lines in (("sep.src", [src[i] for i in keep]), ("sep.tgt", [tgt[i] for i in keep]),
                        ("plain.src", plain), ("plain.tgt", [tgt[i] for i in keep]),
                        ("refs.txt", [raw_tgt[i] for i in keep])):
        write_lines(out / name, lines)
    base = work / "data" / "base-bin"
    run("preprocess", ["--source-lang", "src", "--target-lang", "tgt", "--testpref", f"{out / 'sep'},{out / 'plain'}",
                       "--srcdict", base / "dict.src.txt", "--tgtdict", base / "dict.tgt.txt",
                       "--destdir", out / "bin", "--workers", "1"], out / "preprocess.log", threads)
    info = {"settings": settings, "documents": documents, "refs": "refs.txt", "bin": "bin",
            "subsets": {"separated": "test", "plain": "test1"}}
    write_atomic(done, json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    log(f"document evaluation set: {len(documents)} documents of {settings['split']}, "
        f"{sum(d['sentences'] for d in documents)} sentences, in {out}")


def reference_documents(work, doc_info):
    """Each document's reference sentences (raw text), in the set's order."""
    return [line.split(JOIN) for line in read_lines(doc_eval_dir(work) / doc_info["refs"])]


def eval_sentences(spec, work, cfg, args, data_info):
    """The reference sentences of every document segment of the older evaluation set (the one
    each cell's ``generate.txt`` decodes), ``{segment index: [sentences]}``: the corpus written
    again with the separator, the same lines chosen as ``prepare_data`` chose, and checked
    against ``eval.ref`` (the sentences joined by a space must be the reference there). Cached
    in ``data/eval-sentences.json``."""
    path = work / "data" / "eval-sentences.json"
    return {int(k): v for k, v in wait_for(work, "eval-sentences", path,
                                           lambda: _eval_sentences(spec, work, cfg, args, data_info, path)).items()}


def _eval_sentences(spec, work, cfg, args, data_info, path):
    from .data import chosen_lines

    out = work / "data" / "eval-separated"
    if out.exists():
        shutil.rmtree(out)
    splits = [split for name, split in cfg["eval_splits"] if name != "sent"]
    corpus, _ = spec.write_separated(out, cfg, args, SEPARATOR, None, splits)
    refs = read_lines(work / "data" / "raw" / data_info.get("ref_file", "eval.tgt"))
    found, start = {}, 0
    for name, split in cfg["eval_splits"]:
        src, tgt = (read_lines(p) for p in corpus.files(split))
        keep = chosen_lines(src, cfg["test_sentences"] if name == "sent" else cfg["docs_per_split"])
        for offset, i in enumerate(keep):
            if name != "sent":
                sentences = tgt[i].split(JOIN)
                if " ".join(sentences) != refs[start + offset]:
                    raise RuntimeError(f"{corpus.files(split)[1]} line {i + 1} is not eval.ref line "
                                       f"{start + offset + 1} with separators: the corpus was written with "
                                       f"other arguments than this work directory's")
                found[start + offset] = sentences
        start += len(keep)
    if start != len(refs):
        raise RuntimeError(f"{len(refs)} references in eval.ref, {start} segments chosen again")
    write_atomic(path, json.dumps(found, ensure_ascii=False) + "\n")
    shutil.rmtree(out)
    log(f"the older evaluation set's {len(found)} documents: sentence references in {path}")
