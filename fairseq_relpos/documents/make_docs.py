"""Pseudo-documents from sentence-aligned parallel text, streamed in constant memory.

Consecutive sentences of one document (delimited by blank lines or by an ids file, and by a
change of language pair) are joined while both sides fit a token budget; IndicTrans2's two
language tags are kept once, at the start of each source document. A ``.lines`` sidecar gives,
for every written document, the 1-based input line numbers of its sentences. Only the declared
``overlap`` repeats sentences and only the ``pairs`` filter leaves them out; a single sentence
over the budget is written alone and counted. Outputs appear only when the whole input was read
without error (written to temporary files, then renamed).
"""
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from .. import scratch
from .tags import join_source, join_target, split_tags
from ..safe_io import check_output, text_lines


@dataclass
class Summary:
    sentences: int = 0           # sentences read
    documents_in: int = 0        # input documents (boundaries: blank line, id change, pair change)
    documents_out: int = 0       # pseudo-documents written
    sentences_out: int = 0       # sentences written, overlap repeats included
    repeated: int = 0            # repeats declared by ``overlap``
    filtered: int = 0            # sentences of pairs left out by ``pairs``
    over_budget: int = 0         # single sentences over the budget, written alone
    max_tokens: int = 0
    total_tokens: int = 0
    by_pair: Counter = field(default_factory=Counter)  # pair -> pseudo-documents written
    paths: tuple = ()

    def report(self, budget):
        mean = self.total_tokens / self.documents_out if self.documents_out else 0
        lines = [
            f"read {self.sentences} sentences in {self.documents_in} documents; wrote "
            f"{self.documents_out} documents to {', '.join(map(str, self.paths))}",
            f"sentences written {self.sentences_out} (of which {self.repeated} repeated by --overlap); "
            f"left out by --pairs {self.filtered}; over budget, written alone {self.over_budget}",
            f"tokens per document (longer side): max {self.max_tokens}, mean {mean:.1f}, budget {budget}",
        ]
        lines += [f"  {pair}\t{n} documents" for pair, n in sorted(self.by_pair.items())]
        return "\n".join(lines)


class TokenCounter:
    """Whitespace tokens, or SentencePiece pieces when a model is given; tags count one each."""

    def __init__(self, spm_model=None):
        self.spm = None
        if spm_model is not None:
            if not Path(spm_model).is_file():
                raise FileNotFoundError(f"SentencePiece model {spm_model} does not exist")
            import sentencepiece
            self.spm = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))

    def __call__(self, text):
        if self.spm is None:
            return len(text.split())
        return len(self.spm.encode(text)) if text.strip() else 0


@dataclass
class Sentence:
    line: int
    tags: tuple
    src: str
    tgt: str
    src_tokens: int
    tgt_tokens: int


def pair_name(tags):
    return "-".join(tags) if tags else "untagged"


def read_sentences(src_path, tgt_path, ids_path, tagged):
    """Yield ``(line number, tags, source text, target text, document id)``, or ``None`` at a
    blank line when there is no ids file."""
    paths = [p for p in (src_path, tgt_path, ids_path) if p is not None]
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p} does not exist")
    files = [text_lines(p) for p in paths]
    try:
        for number, lines in enumerate(zip_longest(*files), start=1):
            if None in lines:
                short = [str(p) for p, line in zip(paths, lines) if line is None]
                longer = [str(p) for p, line in zip(paths, lines) if line is not None]
                raise ValueError(f"line counts differ: {', '.join(short)} end(s) after line {number - 1} "
                                 f"but {', '.join(longer)} go(es) on")
            src, tgt = lines[0].strip(), lines[1].strip()
            doc = lines[2].strip() if ids_path is not None else None
            if not src and not tgt and ids_path is None:
                yield None
                continue
            if not src or not tgt:
                side = "source" if not src else "target"
                raise ValueError(f"line {number}: empty {side} sentence" + (
                    " (with --ids, blank lines are not document boundaries)" if ids_path else
                    " while the other side is not blank (document boundaries must agree)"))
            tags = None
            if tagged:
                tags, src = split_tags(src)
                if tags is None:
                    raise ValueError(f"{src_path} line {number} does not start with two language tags "
                                     f"like 'eng_Latn hin_Deva'; use --no-tags for untagged text")
            yield number, tags, src, tgt, doc
    finally:
        for f in files:
            f.close()


def wanted(pair_filter, tags):
    if pair_filter is None:
        return None
    return [f for f in pair_filter if f == pair_name(tags) or (tags and f in tags)]


class Writer:
    """The three outputs, written to locked scratch files beside them (see ``scratch``) and
    renamed into place by ``close(keep=True)``; ``close(keep=False)`` removes them, also when
    closing fails (a full disk fails the last flush)."""

    def __init__(self, out_paths, separator, count, tags_tokens):
        self.paths = [Path(p) for p in out_paths]
        self.tmp, self.locks, self.files = [], [], []
        try:
            for path in self.paths:
                scratch.clean_stale(os.path.dirname(os.path.abspath(path)))
                tmp, lock = scratch.scratch_file(path)
                self.tmp.append(Path(tmp)), self.locks.append(lock)
                self.files.append(os.fdopen(os.dup(lock), "w", encoding="utf-8", newline="\n"))
        except BaseException:
            self.close(keep=False)
            raise
        self.separator = separator
        self.separator_tokens = count(separator)
        self.tags_tokens = tags_tokens

    def cost(self, sentences):
        """Tokens of the longer side of these sentences joined into one document."""
        joins = self.separator_tokens * (len(sentences) - 1)
        src = sum(s.src_tokens for s in sentences) + joins + (self.tags_tokens if sentences[0].tags else 0)
        tgt = sum(s.tgt_tokens for s in sentences) + joins
        return max(src, tgt)

    def write(self, sentences):
        src, tgt, lines = self.files
        try:
            src.write(join_source(sentences[0].tags, [s.src for s in sentences], self.separator) + "\n")
            tgt.write(join_target([s.tgt for s in sentences], self.separator) + "\n")
            lines.write(" ".join(str(s.line) for s in sentences) + "\n")
        except OSError as err:  # a full disk: name the outputs
            raise scratch.failed_write(err, ", ".join(map(str, self.paths))) from err

    def close(self, keep):
        failed = None
        for f in self.files:
            try:
                f.close()
            except OSError as err:
                failed = failed or err
        try:
            for tmp, path in zip(self.tmp, self.paths):
                if keep and failed is None:
                    os.chmod(tmp, 0o666 & ~scratch.umask())
                    os.replace(tmp, path)
                else:
                    scratch.remove(tmp)
        finally:
            for lock in self.locks:
                os.close(lock)
        if failed is not None:
            raise scratch.failed_write(failed, ", ".join(map(str, self.paths)))


def make_documents(src_path, tgt_path, out_src, out_tgt, out_lines, budget, ids_path=None, overlap=0,
                   separator=" ", min_budget=None, seed=1, pairs=None, spm_model=None, tagged=True,
                   force=False):
    """Write pseudo-documents of at most ``budget`` tokens per side (each document's budget drawn
    uniformly from [min_budget, budget] with ``seed`` when ``min_budget`` is given, so that the
    documents cover all lengths); consecutive documents cut from one input document share
    ``overlap`` sentences when they fit. ``pairs``: keep only these language pairs
    (``eng_Latn-hin_Deva``) or languages (``hin_Deva``). Existing outputs are replaced only
    with ``force``; an input without a sentence is an error. Returns a :class:`Summary`."""
    if budget <= 0:
        raise ValueError(f"the budget must be a positive number of tokens, not {budget}")
    if min_budget is not None and not 0 < min_budget <= budget:
        raise ValueError(f"the minimum budget must be in [1, budget={budget}], not {min_budget}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0 sentences, not {overlap}")
    if pairs is not None and not tagged:
        raise ValueError("a pairs filter needs language tags (it cannot be used with untagged text)")
    if "\n" in separator or "\r" in separator:
        raise ValueError("--separator must not contain a line break: it would split documents over "
                         "several lines, out of step with OUT.lines")
    outs = [Path(p) for p in (out_src, out_tgt, out_lines)]
    ins = {Path(p).resolve() for p in (src_path, tgt_path, ids_path) if p is not None}
    if len(set(outs)) < 3 or any(p.resolve() in ins for p in outs):
        raise ValueError("output paths must differ from each other and from the inputs")
    for p in outs:
        check_output(p, force=force)

    count = TokenCounter(spm_model)
    rng = random.Random(seed)
    summary = Summary(paths=tuple(outs))
    seen_pairs, matched = Counter(), Counter()
    writer = Writer(outs, separator, count, tags_tokens=2)
    chunk, carried, limit = [], 0, budget

    def draw_limit():
        return budget if min_budget is None else rng.randint(min_budget, budget)

    def flush():
        nonlocal chunk, carried
        if chunk:
            writer.write(chunk)
            tokens = writer.cost(chunk)
            summary.documents_out += 1
            summary.sentences_out += len(chunk)
            summary.repeated += carried
            summary.over_budget += tokens > budget
            summary.max_tokens = max(summary.max_tokens, tokens)
            summary.total_tokens += tokens
            summary.by_pair[pair_name(chunk[0].tags)] += 1
        chunk, carried = [], 0

    ok = False
    try:
        previous_key = object()
        for item in read_sentences(src_path, tgt_path, ids_path, tagged):
            if item is None:  # blank line: document boundary
                flush()
                previous_key = object()
                continue
            number, tags, src, tgt, doc = item
            summary.sentences += 1
            seen_pairs[pair_name(tags)] += 1
            key = (doc, tags)
            if key != previous_key:
                flush()
                summary.documents_in += 1
                previous_key = key
            hits = wanted(pairs, tags)
            if hits is not None:
                matched.update(hits)
                if not hits:
                    summary.filtered += 1
                    continue
            sentence = Sentence(number, tags, src, tgt, count(src), count(tgt))
            if chunk and writer.cost(chunk + [sentence]) <= limit:
                chunk.append(sentence)
                continue
            # carry at most len(chunk) - 1 sentences, so that no document contains the one before
            carry = chunk[len(chunk) - min(overlap, len(chunk) - 1):] if chunk else []
            flush()
            limit = draw_limit()
            while carry and writer.cost(carry + [sentence]) > limit:
                carry = carry[1:]
            chunk, carried = carry + [sentence], len(carry)
        flush()
        if not summary.sentences:
            raise ValueError(f"{src_path} and {tgt_path} hold no sentence: nothing to write")
        unmatched = [p for p in (pairs or []) if not matched[p]]
        if unmatched:
            raise ValueError(f"--pairs {' '.join(unmatched)} matched no sentence; pairs in the data: "
                             f"{', '.join(f'{p} ({n})' for p, n in sorted(seen_pairs.items()))}")
        if summary.sentences_out - summary.repeated != summary.sentences - summary.filtered:
            raise RuntimeError("internal error: sentences were lost or duplicated; nothing was written")
        ok = True
    finally:
        writer.close(keep=ok)
    return summary
