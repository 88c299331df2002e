"""The data of a work directory: the corpus, the evaluation set, the fine-tuning documents
(``make-docs``) and everything binarised with the base's dictionaries; cached in ``data/``."""
import json
import random
import shutil
import statistics

from fairseq_relpos.documents.make_docs import make_documents
from fairseq_relpos.documents.sentences import read_sentence_documents
from fairseq_relpos.documents.tags import join_source, join_target, split_tags
from fairseq_relpos.floors import floors
from fairseq_relpos.scoring import normalized, read_lines

from .runner import log, run, wait_for, write_atomic


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def ft_data_name(variant):
    return "ft-bin" if variant is None else f"ft-{variant}-bin"


def binarise_ft(data, stem, name, valid, threads):
    """``data/raw/STEM-train.{src,tgt}`` binarised with the base's dictionaries into ``data/NAME``;
    ``valid`` is the validation text prefix, or None to reuse the plain data's binarised one."""
    run("preprocess", ["--source-lang", "src", "--target-lang", "tgt", "--trainpref", data / "raw" / f"{stem}-train",
                       *(["--validpref", valid] if valid else []), "--srcdict", data / "base-bin" / "dict.src.txt",
                       "--tgtdict", data / "base-bin" / "dict.tgt.txt", "--destdir", data / name,
                       "--workers", "1"], data / f"preprocess-{stem}.log", threads)
    if valid is None:  # fairseq-train loads a validation set even with --disable-validation
        for path in (data / ft_data_name(None)).glob("valid.*"):
            shutil.copyfile(path, data / name / path.name)


def make_ft_data(data, encoded, corpus, budget, min_budget, seed, name, threads):
    """Every training sentence plus documents of the document languages (``make-docs``),
    binarised with the base's dictionaries into ``data/name``; returns the documents' summary."""
    raw = data / "raw"
    stem = name.replace("-bin", "")
    docs = make_documents(*encoded("train-docs"), raw / f"{stem}-docs.src", raw / f"{stem}-docs.tgt",
                          raw / f"{stem}-docs.lines", budget=budget, min_budget=min_budget,
                          ids_path=corpus.root / "train-docs.ids", seed=seed, force=True)
    log(docs.report(budget).splitlines()[0])
    for side, path in zip(("src", "tgt"), encoded("train")):
        write_lines(raw / f"{stem}-train.{side}", read_lines(path) + read_lines(raw / f"{stem}-docs.{side}"))
    binarise_ft(data, stem, name, encoded("valid")[0].with_suffix(""), threads)
    return {"documents": docs.documents_out, "max_tokens": docs.max_tokens,
            "mean_tokens": round(docs.total_tokens / max(1, docs.documents_out), 1),
            "budget": budget, "min_budget": min_budget}


def variant_ft_data(spec, work, data_info, name, variant, threads):
    """The fine-tuning data of a variant that trains on other documents than the plain cell's,
    binarised into ``data/ft-NAME-bin`` on first use (from the plain data's files, so that a work
    directory made before the variant existed gains it), cached (``data/ft-NAME.json``); returns
    its summary like ``data_info["ft_docs"]``:

    * ``doc_share``: only that share of the plain documents (a seeded draw, the corpus seed's;
      every sentence kept): the paper's question of how little document data is needed;
    * ``separator``: the plain cell's documents, each the same sentences, joined by the separator
      on both sides (make-docs's ``.lines`` sidecar names them): only the separator differs."""
    data = work / "data"
    done = data / f"ft-{name}.json"
    if "doc_share" in variant:
        build = lambda: _share_ft_data(data, data_info, name, variant["doc_share"], done, threads)  # noqa: E731
    else:
        build = lambda: _separated_ft_data(spec, data, data_info, name, variant["separator"], done, threads)  # noqa: E731
    return wait_for(work, f"data-{name}", done, build)


def _doc_lengths(src, tgt):
    """Each document's longer side, as make-docs counts."""
    return [max(len(s.split()), len(t.split())) for s, t in zip(src, tgt)]


def _write_variant(data, data_info, name, docs, threads):
    stem = f"ft-{name}"
    for side in ("src", "tgt"):
        sentences = read_lines(data / "raw" / f"ft-train.{side}")[:data_info["ft_sentences"]]
        write_lines(data / "raw" / f"{stem}-train.{side}", sentences + docs[side])
    binarise_ft(data, stem, ft_data_name(name), None, threads)
    lengths = _doc_lengths(docs["src"], docs["tgt"])
    return dict(data_info["ft_docs"], documents=len(lengths), max_tokens=max(lengths, default=0),
                mean_tokens=round(statistics.mean(lengths), 1) if lengths else 0.0)


def _share_ft_data(data, data_info, name, share, done, threads):
    raw = data / "raw"
    docs = {side: read_lines(raw / f"ft-docs.{side}") for side in ("src", "tgt")}
    total = len(docs["src"])
    keep = sorted(random.Random(data_info["corpus_manifest"]["seed"]).sample(range(total), round(share * total)))
    info = dict(_write_variant(data, data_info, name, {side: [docs[side][i] for i in keep] for side in docs}, threads),
                documents_all=total, share=share)
    write_atomic(done, json.dumps(info, indent=1) + "\n")
    log(f"ft-{name}: {len(keep)} of {total} documents, every sentence")


def _separated_ft_data(spec, data, data_info, name, separator, done, threads):
    raw = data / "raw"
    sentences = {side: read_lines(path) for side, path in zip(("src", "tgt"), encoded_files(spec, data, "train-docs"))}
    docs = {"src": [], "tgt": []}
    for line in read_lines(raw / "ft-docs.lines"):
        numbers = [int(n) - 1 for n in line.split()]
        tags, first = split_tags(sentences["src"][numbers[0]])
        docs["src"].append(join_source(tags, [first] + [split_tags(sentences["src"][i])[1] for i in numbers[1:]],
                                       f" {separator} "))
        docs["tgt"].append(join_target([sentences["tgt"][i] for i in numbers], f" {separator} "))
    plain = read_lines(raw / "ft-docs.tgt")
    if [d.replace(f" {separator} ", " ") for d in docs["tgt"]] != plain:
        raise RuntimeError(f"{raw / 'ft-docs.lines'} does not name the sentences of {raw / 'ft-docs.tgt'}")
    info = dict(_write_variant(data, data_info, name, docs, threads), separator=separator)
    write_atomic(done, json.dumps(info, indent=1) + "\n")
    log(f"ft-{name}: the {len(plain)} plain documents with {separator} between their sentences")


def encoded_files(spec, data, split):
    """The files of a corpus split as the model reads them (``Corpus.encoded_dir``)."""
    root = data / "raw" / "corpus" / spec.encoded_dir
    return root / f"{split}.src", root / f"{split}.tgt"


def longest_kept(encoded_pair, cap):
    """The longest side (model tokens) of the training pairs a length cap of ``cap`` positions
    keeps (fairseq counts the end-of-sentence token too)."""
    longest = 0
    for s, t in zip(*(read_lines(p) for p in encoded_pair)):
        n, m = len(s.split()) + 1, len(t.split()) + 1
        if n <= cap and m <= cap:
            longest = max(longest, n - 1, m - 1)
    return longest


def chosen_lines(src, limit):
    """The lines of a test split that the evaluation set keeps: all, or with ``limit`` the first
    ``limit // languages`` (at least one) of every language."""
    keep = list(range(len(src)))
    if limit is None:
        return keep
    per_lang = {}
    for i in keep:
        per_lang.setdefault(src[i].split()[1], []).append(i)
    return sorted(i for ids in per_lang.values() for i in ids[:max(1, limit // len(per_lang))])


def write_sentence_documents(sentences_path, lines_path, documents):
    """Documents' sentences, one a line, and each document's 1-based line numbers in that file
    (make-docs's ``.lines`` format; ``fairseq-relpos evaluate --ref-sentences --lines``)."""
    numbers, count = [], 0
    for document in documents:
        numbers.append(" ".join(str(count + k) for k in range(1, len(document) + 1)))
        count += len(document)
    write_lines(sentences_path, [s for document in documents for s in document])
    write_lines(lines_path, numbers)


def reference_floors(segments, ref_docs):
    """What a whole-document score is worth (``fairseq_relpos.floors``: another document's
    reference, the reference cut short, a looped prefix), for each document test set, over all
    its documents and per language."""
    out = {}
    for split in dict.fromkeys(seg["split"] for seg in segments):
        idx = [i for i, seg in enumerate(segments) if seg["split"] == split]
        if all(len(ref_docs[i]) == 1 for i in idx):
            continue
        docs, langs = [normalized(ref_docs[i]) for i in idx], [segments[i]["lang"] for i in idx]
        parts = {"all": list(range(len(idx))), **{lang: [k for k, x in enumerate(langs) if x == lang]
                                                  for lang in dict.fromkeys(langs)}}
        out[split] = {}
        for name, ks in parts.items():
            got = floors([docs[k] for k in ks], [langs[k] for k in ks])
            out[split][name] = {f: (round(v["chrf++"], 2) if v["chrf++"] is not None else None) for f, v in got.items()}
    return out


def prepare_data(spec, work, cfg, args, threads):
    """Corpus, documents, the evaluation set and binarised data; cached."""
    data = work / "data"
    done = data / "data.json"
    if done.is_file():
        return json.loads(done.read_text())
    if data.exists():
        shutil.rmtree(data)
    raw = data / "raw"
    raw.mkdir(parents=True)
    corpus, encoded = spec.write(raw / "corpus", cfg, args)
    # one evaluation set: sentence test set, then each document test set; segments remembered
    segments, src_lines, tgt_lines, ref_lines, ref_docs = [], [], [], [], []
    for name, split in cfg["eval_splits"]:
        src, tgt = (read_lines(p) for p in encoded(split))
        ref = read_lines(corpus.files(split)[1])
        sentences = (read_sentence_documents(corpus.root / f"{split}.tgt-sentences", corpus.root / f"{split}.lines")
                     if split in corpus.doc_test_splits else [[line] for line in ref])
        keep = chosen_lines(src, cfg["test_sentences"] if name == "sent" else cfg["docs_per_split"])
        for i in keep:
            segments.append({"split": name, "lang": src[i].split()[1], "tokens": len(tgt[i].split())})
            src_lines.append(src[i])
            tgt_lines.append(tgt[i])
            ref_lines.append(ref[i])
            ref_docs.append(sentences[i])
    write_lines(raw / "eval.src", src_lines)
    write_sentence_documents(raw / "eval.ref-sentences", raw / "eval.lines", ref_docs)
    write_lines(raw / "eval.tgt", tgt_lines)
    write_lines(raw / "eval.ref", ref_lines)
    sent = sum(seg["split"] == "sent" for seg in segments)  # the sentence test set alone: test1
    for suffix, lines in (("src", src_lines), ("tgt", tgt_lines), ("ref", ref_lines)):
        write_lines(raw / f"eval-sent.{suffix}", lines[:sent])
    train, valid = (encoded(s)[0].with_suffix("") for s in ("train", "valid"))
    run("preprocess", ["--source-lang", "src", "--target-lang", "tgt", "--trainpref", train,
                       "--validpref", valid, "--testpref", f"{raw / 'eval'},{raw / 'eval-sent'}",
                       "--destdir", data / "base-bin",
                       "--workers", "1"], data / "preprocess-base.log", threads)
    info = {
        "segments": segments,
        "doc_languages": list(corpus.doc_targets),
        "languages": list(corpus.targets),
        "groups": {lang: spec.group(lang, corpus.doc_targets) for lang in corpus.targets},
        "train_sentence_max_tokens": longest_kept(encoded("train"), cfg["base_positions"]),
        "ft_docs": make_ft_data(data, encoded, corpus, args.doc_budget, args.doc_min_budget, args.corpus_seed,
                                "ft-bin", threads),
        "ft_variants": {},
        "ft_sentences": len(read_lines(encoded("train")[0])),
        "ref_file": "eval.ref",
        "ref_sentences": ["eval.ref-sentences", "eval.lines"],
        "floors": reference_floors(segments, ref_docs),
        "ref_tokens": {},
        "corpus_manifest": json.loads((corpus.root / "corpus.json").read_text()),
    }
    for name, variant in spec.variants.items():
        if "doc_budget" in variant:
            info["ft_variants"][name] = make_ft_data(data, encoded, corpus, variant["doc_budget"],
                                                     variant["doc_min_budget"], args.corpus_seed,
                                                     ft_data_name(name), threads)
    for seg in segments:
        info["ref_tokens"].setdefault(seg["split"], []).append(seg["tokens"])
    info["ref_tokens"] = {k: {"mean": round(statistics.mean(v), 1), "max": max(v)}
                          for k, v in info["ref_tokens"].items()}
    done.write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return info
