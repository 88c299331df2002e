"""Rebuild a LoRA checkpoint's model under any task, so stock ``fairseq-generate`` (plain
``--task translation``) decodes it with no extra flag.

fairseq builds a checkpoint's model from its saved model config and ``_name`` picks the model
class before ``arch``. ``translation_lora`` sets ``_name`` to ``lora_adapted`` and saves the
adapter spec next to the unchanged ``arch``; this model then builds ``arch`` as usual and wraps
it the same way before the strict ``load_state_dict``. Its architecture name is registered
with every other in ``architectures``.
"""
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY, BaseFairseqModel, register_model

from ..lora.wrap import wrap

NAME = "lora_adapted"


@register_model(NAME)
class LoRAAdaptedModel(BaseFairseqModel):
    """Not a model to train (use ``--task translation_lora`` with a real ``--arch``)."""

    @classmethod
    def build_model(cls, args, task):
        spec = getattr(args, "lora_spec", None)
        if spec is None or args.arch == NAME:
            raise ValueError(f"{NAME} only rebuilds checkpoints saved by --task translation_lora; "
                             "train with the base --arch and --task translation_lora")
        ARCH_CONFIG_REGISTRY[args.arch](args)
        model = ARCH_MODEL_REGISTRY[args.arch].build_model(args, task)
        return wrap(model, spec)


def mark(model_cfg, model):
    model_cfg.lora_spec = model.lora_spec
    model_cfg._name = NAME
