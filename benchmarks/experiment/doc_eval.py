"""The document evaluation set of the decoding modes, and the sentences of the older evaluation
set's documents (for ``--rescore``); both built after the fact, so that a work directory whose
cells were decoded before either existed gains them without training anything again.

``data/doc-eval/`` holds every document of the corpus's document evaluation split
(``Corpus.doc_eval``: the Bible's 24 test chapters, or its N shortest a language under
``--quick``) written again with :data:`~.settings.SEPARATOR` between the sentences on both
sides and encoded with the model's own tokeniser (the SentencePiece model of ``data/raw/corpus``,
not trained again), binarised with the base's dictionaries: subset ``test`` with the separators
in the source, ``test1`` without them (what models fine-tuned without separators read, as in
the older evaluation set). Its references are an evaluation set of their own under
``data/raw`` (``doc-eval.ref``: each document whole; ``doc-eval.ref-sentences`` and
``doc-eval.lines``: its sentences), scored as the older one is (``decode.score_segments``).
"""
import json
import shutil

from fairseq_relpos.documents.tags import split_tags
from fairseq_relpos.scoring import read_lines

from .data import chosen_lines, reference_floors, write_lines, write_sentence_documents
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
                        ("plain.src", plain), ("plain.tgt", [tgt[i] for i in keep])):
        write_lines(out / name, lines)
    references = [raw_tgt[i].split(JOIN) for i in keep]
    raw = work / "data" / "raw"
    write_lines(raw / "doc-eval.ref", [" ".join(r) for r in references])
    write_sentence_documents(raw / "doc-eval.ref-sentences", raw / "doc-eval.lines", references)
    base = work / "data" / "base-bin"
    run("preprocess", ["--source-lang", "src", "--target-lang", "tgt", "--testpref", f"{out / 'sep'},{out / 'plain'}",
                       "--srcdict", base / "dict.src.txt", "--tgtdict", base / "dict.tgt.txt",
                       "--destdir", out / "bin", "--workers", "1"], out / "preprocess.log", threads)
    segments = [{"split": settings["name"], "lang": d["lang"], "tokens": d["tokens"]} for d in documents]
    info = {"settings": settings, "documents": documents, "bin": "bin",
            "subsets": {"separated": "test", "plain": "test1"},
            "evaluation": {"segments": segments, "ref_file": "doc-eval.ref",
                           "ref_sentences": ["doc-eval.ref-sentences", "doc-eval.lines"]},
            "floors": reference_floors(segments, references)}
    write_atomic(done, json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    log(f"document evaluation set: {len(documents)} documents of {settings['split']}, "
        f"{sum(d['sentences'] for d in documents)} sentences, in {out}")


def eval_sentences(spec, work, cfg, args, data_info):
    """``data_info`` with the reference sentences of the older evaluation set (the one each cell's
    ``generate.txt`` decodes) and its floors, for a work directory prepared before
    ``prepare_data`` kept them: the corpus written again with the separator, the same lines
    chosen as ``prepare_data`` chose, checked against ``eval.ref`` (the sentences joined by a
    space must be the reference there), written as ``prepare_data`` writes them now
    (``eval.ref-sentences``, ``eval.lines``); cached in ``data/eval-sentences.json``."""
    if "ref_sentences" in data_info:
        return data_info
    path = work / "data" / "eval-sentences.json"
    found = wait_for(work, "eval-sentences", path, lambda: _eval_sentences(spec, work, cfg, args, data_info, path))
    return dict(data_info, **found)


def _eval_sentences(spec, work, cfg, args, data_info, path):
    out = work / "data" / "eval-separated"
    if out.exists():
        shutil.rmtree(out)
    splits = [split for name, split in cfg["eval_splits"] if name != "sent"]
    corpus, _ = spec.write_separated(out, cfg, args, SEPARATOR, None, splits)
    raw = work / "data" / "raw"
    refs = read_lines(raw / data_info.get("ref_file", "eval.tgt"))
    documents = []
    for name, split in cfg["eval_splits"]:
        if name == "sent":
            documents += [[ref] for ref in refs[len(documents):len(documents) + sum(
                s["split"] == "sent" for s in data_info["segments"])]]
            continue
        src, tgt = (read_lines(p) for p in corpus.files(split))
        for i in chosen_lines(src, cfg["docs_per_split"]):
            sentences = tgt[i].split(JOIN)
            if " ".join(sentences) != refs[len(documents)]:
                raise RuntimeError(f"{corpus.files(split)[1]} line {i + 1} is not eval.ref line {len(documents) + 1} "
                                   f"with separators: the corpus was written with other arguments than this work "
                                   f"directory's")
            documents.append(sentences)
    if len(documents) != len(refs):
        raise RuntimeError(f"{len(refs)} references in eval.ref, {len(documents)} segments chosen again")
    write_sentence_documents(raw / "eval.ref-sentences", raw / "eval.lines", documents)
    found = {"ref_sentences": ["eval.ref-sentences", "eval.lines"],
             "floors": reference_floors(data_info["segments"], documents)}
    write_atomic(path, json.dumps(found, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(out)
    log(f"the older evaluation set's documents: sentence references in {raw / 'eval.ref-sentences'}")
