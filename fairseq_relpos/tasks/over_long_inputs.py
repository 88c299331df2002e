"""Over-long inputs named, never skipped silently, outside training.

fairseq refuses an input longer than max positions by naming the first one only, or, with
``--skip-invalid-size-inputs-valid-test``, skips them logging only the first ten ids.
:class:`DocumentBatchingMixin` changes this for every split except the training one: over-long
inputs raise :class:`InputTooLongError` counting them and naming the first ``MAX_LISTED`` (id,
line, size, limit); with ``--skip-invalid-size-inputs-valid-test`` they are skipped, and the log
says the same (one line, however many documents a split holds).
(That every input is batched, under any task, is the plugin's run-time adaptation
``fairseq_patches.keep_last_batch``.) Training keeps fairseq's behaviour (skipping over-long training
pairs is how fairseq trains). Use it first in the bases of a ``TranslationTask`` subclass:
``class MyTask(DocumentBatchingMixin, TranslationTask)``.
"""
import logging

logger = logging.getLogger(__name__)

MAX_LISTED = 50


class InputTooLongError(ValueError):
    pass


def is_training_dataset(task, dataset):
    """True for the dataset the task loaded under its training split name (``--train-subset``)."""
    train_subset = getattr(task.cfg, "train_subset", "train")
    return dataset is task.datasets.get(train_subset)


def describe_ignored(dataset, ignored, max_positions):
    """How many, and the first MAX_LISTED by id. Ids are fairseq sample ids (0-based); line
    numbers are 1-based in the split's text."""
    ignored = sorted(int(i) for i in ignored)
    listed = ignored[:MAX_LISTED]

    def tokens(size):
        return "/".join(str(int(n)) for n in (size if isinstance(size, tuple) else (size,)))

    shown = ", ".join(f"#{i} (line {i + 1}, {tokens(dataset.size(i))} tokens)" for i in listed)
    more = f" and {len(ignored) - len(listed)} more" if len(ignored) > len(listed) else ""
    return f"{len(ignored)} input(s) longer than max positions {max_positions}: {shown}{more}"


class DocumentBatchingMixin:
    """Over-long non-training inputs are counted and named in an error (or in the log, when skipped)."""

    def filter_indices_by_size(self, indices, dataset, max_positions=None, ignore_invalid_inputs=False):
        if is_training_dataset(self, dataset) or max_positions is None:
            return super().filter_indices_by_size(indices, dataset, max_positions, ignore_invalid_inputs)
        kept, ignored = dataset.filter_indices_by_size(indices, max_positions)
        if len(ignored) == 0:
            return kept
        if not ignore_invalid_inputs:
            raise InputTooLongError(
                f"{describe_ignored(dataset, ignored, max_positions)}; raise "
                f"--max-source-positions/--max-target-positions, split these inputs, or pass "
                f"--skip-invalid-size-inputs-valid-test to skip them")
        logger.warning("skipping %s (--skip-invalid-size-inputs-valid-test)",
                       describe_ignored(dataset, ignored, max_positions))
        return kept
