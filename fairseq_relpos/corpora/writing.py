"""The paths of a parallel corpus written by ``toy-corpus`` or ``bible-corpus``, and the
summary both commands print, so the experiment runner treats the two corpora alike."""
from dataclasses import dataclass, field
from pathlib import Path


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
        if "train-docs" in self.splits:
            print(f"{self.root / 'train-docs.ids'}\t{docs_ids}")
        if spm_model is not None:
            print(f"{spm_model}\tand {self.root / 'spm'}/*.{{src,tgt}}")
        print(f"{self.root / 'corpus.json'}\t{manifest}")
