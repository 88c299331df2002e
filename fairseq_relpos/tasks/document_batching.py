"""Batching that never loses an input outside training.

fairseq main drops a trailing batch whose size is not a multiple of
``--required-batch-size-multiple`` (default 8) in ``data_utils.batch_by_size``: fairseq-generate
on 5 documents prints nothing, and validation quietly scores fewer sentences. Over-long inputs
are either skipped (``--skip-invalid-size-inputs-valid-test``, logging only the first ten ids) or
refused with the first one only. :class:`DocumentBatchingMixin` changes both for every split
except the training one:

* batches are built with ``required_batch_size_multiple=1``, so every input is batched;
* over-long inputs raise :class:`InputTooLongError` naming every one of them (id, line, size,
  limit); with ``--skip-invalid-size-inputs-valid-test`` they are skipped and every skipped id
  is logged.

Training keeps fairseq's behaviour (dropping a ragged last batch and skipping over-long training
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


def describe_ignored(dataset, ignored, max_positions, limit=None):
    """Ids are fairseq sample ids (0-based); line numbers are 1-based in the split's text."""
    ignored = sorted(int(i) for i in ignored)
    listed = ignored if limit is None else ignored[:limit]

    def tokens(size):
        return "/".join(str(int(n)) for n in (size if isinstance(size, tuple) else (size,)))

    shown = ", ".join(f"#{i} (line {i + 1}, {tokens(dataset.size(i))} tokens)" for i in listed)
    more = f" and {len(ignored) - len(listed)} more" if len(ignored) > len(listed) else ""
    return f"{len(ignored)} input(s) longer than max positions {max_positions}: {shown}{more}"


class DocumentBatchingMixin:
    """Every non-training input is batched and translated, or named in an error."""

    def get_batch_iterator(self, dataset, *args, required_batch_size_multiple=1, **kwargs):
        if not is_training_dataset(self, dataset):
            required_batch_size_multiple = 1
        return super().get_batch_iterator(
            dataset, *args, required_batch_size_multiple=required_batch_size_multiple, **kwargs)

    def filter_indices_by_size(self, indices, dataset, max_positions=None, ignore_invalid_inputs=False):
        if is_training_dataset(self, dataset) or max_positions is None:
            return super().filter_indices_by_size(indices, dataset, max_positions, ignore_invalid_inputs)
        kept, ignored = dataset.filter_indices_by_size(indices, max_positions)
        if len(ignored) == 0:
            return kept
        if not ignore_invalid_inputs:
            raise InputTooLongError(
                f"{describe_ignored(dataset, ignored, max_positions, MAX_LISTED)}; raise "
                f"--max-source-positions/--max-target-positions, split these inputs, or pass "
                f"--skip-invalid-size-inputs-valid-test to skip them")
        logger.warning("skipping %s (--skip-invalid-size-inputs-valid-test)",
                       describe_ignored(dataset, ignored, max_positions))
        return kept
