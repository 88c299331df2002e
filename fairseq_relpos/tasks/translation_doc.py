"""``--task translation_doc``: fairseq's ``translation`` task that decodes every document.

Identical to ``translation`` (same options, data and checkpoints) except for the batching
policy of :class:`~fairseq_relpos.tasks.document_batching.DocumentBatchingMixin`: outside
training no ragged last batch is dropped and over-long inputs are named, never skipped silently.
"""
from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from .document_batching import DocumentBatchingMixin


@dataclass
class TranslationDocConfig(TranslationConfig):
    pass


@register_task("translation_doc", dataclass=TranslationDocConfig)
class TranslationDocTask(DocumentBatchingMixin, TranslationTask):
    pass
