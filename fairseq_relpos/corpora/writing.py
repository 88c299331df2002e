"""What the toy and Bible corpora share: writing tagged pairs, the paths of a written corpus and
the summary both commands print (so the experiment runner treats them alike), and the joint
SentencePiece model."""
from dataclasses import dataclass, field
from pathlib import Path

from ..documents.tags import join_source, join_target, split_tags


@dataclass(frozen=True)
class WrittenCorpus:
    """``prefix(split)`` + ``.src``/``.tgt`` are a split's files; subclasses name their document
    test sets in ``doc_test_splits``."""
    root: Path
    seed: int
    targets: tuple
    doc_targets: tuple  # languages that have long-context (document) training data
    splits: dict = field(default_factory=dict)  # name -> number of lines

    def prefix(self, split):
        if split not in self.splits:
            raise KeyError(f"no split {split!r} in the corpus at {self.root}; have {sorted(self.splits)}")
        return self.root / split

    def files(self, split):
        return self.prefix(split).with_suffix(".src"), self.prefix(split).with_suffix(".tgt")

    @property
    def doc_test_splits(self):
        raise NotImplementedError

    def print_summary(self, docs_ids, spm_model=None, manifest="manifest"):
        """What a corpus command wrote, a line per file."""
        for split, lines in self.splits.items():
            print(f"{self.prefix(split)}.{{src,tgt}}\t{lines} lines")
        for split in self.doc_test_splits:
            print(f"{self.prefix(split)}.{{tgt-sentences,lines}}\teach document's target sentences")
        if "train-docs" in self.splits:
            print(f"{self.root / 'train-docs.ids'}\t{docs_ids}")
        if spm_model is not None:
            print(f"{spm_model}\tand {self.root / 'spm'}/*.{{src,tgt}}")
        print(f"{self.root / 'corpus.json'}\t{manifest}")


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def write_pairs(root, split, rows):
    """rows: (tags, source text, target text); returns the number of lines."""
    write_lines(root / f"{split}.src", [join_source(tags, [s]) for tags, s, _ in rows])
    write_lines(root / f"{split}.tgt", [t for _, _, t in rows])
    return len(rows)


def write_document_pairs(root, split, rows, join=" "):
    """rows: (tags, source sentences, target sentences): a document a line as ``write_pairs``
    writes it (sentences joined by ``join``: spaces, or a separator symbol with spaces), and its target sentences, for scoring sentence by
    sentence: ``SPLIT.tgt-sentences`` (one a line) and ``SPLIT.lines`` (each document's 1-based
    line numbers in it, make-docs's sidecar format; ``fairseq-relpos evaluate --ref-sentences
    --lines``). Returns the number of documents."""
    sentences, numbers = [], []
    for _, _, target in rows:
        numbers.append(" ".join(str(len(sentences) + k) for k in range(1, len(target) + 1)))
        sentences += target
    write_lines(root / f"{split}.tgt-sentences", sentences)
    write_lines(root / f"{split}.lines", numbers)
    return write_pairs(root, split, [(tags, join.join(src), join_target(tgt, join)) for tags, src, tgt in rows])


def token_lengths(path):
    with open(path, encoding="utf-8") as f:
        lengths = [len(line.split()) for line in f]
    return {"max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1)}


def train_sentencepiece(corpus, vocab_size, normalization="nmt_nfkc", unique=False, separator=None):
    """A joint SentencePiece model (``spm{vocab_size}.model``) on the untagged training text, and
    every split encoded with it under ``spm/`` with the tags kept in front, as IndicTrans2 does.
    ``unique`` trains on each distinct line once (a source repeated for every target language
    would otherwise outweigh the targets); ``normalization="nfkc"`` keeps zero-width (non-)joiners,
    which ``nmt_nfkc`` partly removes. A document ``separator`` symbol is kept whole (the text
    between separators is encoded). Returns the model's path."""
    import sentencepiece as spm

    def untagged():
        seen = set()
        for path in corpus.files("train"):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    text = split_tags(line.strip())[1]
                    if unique:
                        if text in seen:
                            continue
                        seen.add(text)
                    yield text

    prefix = corpus.root / f"spm{vocab_size}"
    spm.SentencePieceTrainer.train(
        sentence_iterator=untagged(), model_prefix=str(prefix), vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, num_threads=1, minloglevel=2,
        hard_vocab_limit=False, normalization_rule_name=normalization)
    encode_sentencepiece(corpus, f"{prefix}.model", separator)
    return prefix.with_suffix(".model")


def encode_sentencepiece(corpus, model_path, separator=None, splits=None):
    """Every split of ``corpus`` (or those named in ``splits``) encoded with the SentencePiece model ``model_path`` under
    ``spm/``, the tags kept in front and a document ``separator`` kept whole (the text between
    separators is encoded): also how a corpus written again with separators is encoded with the
    model an earlier run trained."""
    import sentencepiece as spm

    model = spm.SentencePieceProcessor(model_file=str(model_path))
    (corpus.root / "spm").mkdir(exist_ok=True)
    for split in corpus.splits if splits is None else splits:
        for path in corpus.files(split):
            with open(path, encoding="utf-8") as f:
                lines = []
                for line in f:
                    tags, text = split_tags(line.strip())
                    parts = [text] if separator is None else text.split(f" {separator} ")
                    pieces = f" {separator} ".join(" ".join(model.encode(p, out_type=str)) for p in parts)
                    lines.append(join_source(tags, pieces.split()))
            write_lines(corpus.root / "spm" / path.name, lines)
