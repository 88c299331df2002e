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

from .. import generation
from .over_long_inputs import DocumentBatchingMixin


@dataclass
class TranslationDocConfig(TranslationConfig):
    pass


@register_task("translation_doc", dataclass=TranslationDocConfig)
class TranslationDocTask(DocumentBatchingMixin, TranslationTask):
    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None,
                        prefix_allowed_tokens_fn=None):
        """Stock search without fairseq's per-step copies (``fairseq_relpos.generation``)."""
        seq_gen_cls, extra_gen_cls_kwargs = generation.generator_choice(args, seq_gen_cls, extra_gen_cls_kwargs)
        return super().build_generator(models, args, seq_gen_cls, extra_gen_cls_kwargs, prefix_allowed_tokens_fn)
