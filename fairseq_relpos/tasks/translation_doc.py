"""``--task translation_doc``: fairseq's ``translation`` task that names over-long documents.

Identical to ``translation`` (same options, data and checkpoints) except that outside training
over-long inputs are named, never skipped silently
(:class:`~fairseq_relpos.tasks.over_long_inputs.DocumentBatchingMixin`). Every input is batched
under any task once the plugin is loaded (``fairseq_patches.keep_last_batch``). Its generator gives
stock's output without fairseq's per-step copies (``fairseq_relpos.generation``).
"""
from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..generation import DocumentDecodingConfig, DocumentGenerationTask
from .over_long_inputs import DocumentBatchingMixin


@dataclass
class TranslationDocConfig(TranslationConfig, DocumentDecodingConfig):
    pass


@register_task("translation_doc", dataclass=TranslationDocConfig)
class TranslationDocTask(DocumentBatchingMixin, DocumentGenerationTask, TranslationTask):
    pass
