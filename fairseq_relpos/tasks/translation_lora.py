"""``--task translation_lora``: fairseq's ``translation`` (so IndicTrans2 data works unchanged)
with the model wrapped in low-rank adapters right after it is built and everything else frozen.

Full fine-tuning stays plain ``--task translation``. Options left unset take the defaults of
the chosen ``--lora-style``: ``lora`` (the authors' fork: loralib on k_proj,v_proj, rank 8,
alpha 16, dropout 0.05) or ``minlora`` (parametrizations on every linear weight, rank 4,
alpha 1). Like ``translation_doc``, it names over-long inputs (see ``over_long_inputs``) and decodes
through ``fairseq_relpos.generation``.
The adapter spec is saved in the checkpoint's model config, so stock
``fairseq-generate --user-dir fairseq_relpos`` rebuilds and re-wraps it (see ``models.lora_transformer``).
"""
import logging
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from .. import lora
from ..checkpoints import safe_torch_load
from ..generation import DocumentDecodingConfig, DocumentGenerationTask
from ..models import lora_transformer
from .over_long_inputs import DocumentBatchingMixin

logger = logging.getLogger(__name__)


@dataclass
class TranslationLoRAConfig(TranslationConfig, DocumentDecodingConfig):
    lora_style: Optional[str] = field(  # a plain str: fairseq's ChoiceEnum values do not pickle into checkpoints
        default=None, metadata={"help": "lora (the default): loralib layers on chosen projections (authors' fork); "
                                        "minlora: parametrizations on every linear weight; "
                                        "with --lora-adapters, the file's style (another one is refused)"})
    lora_rank: Optional[int] = field(default=None, metadata={"help": "adapter rank (default: lora 8, minlora 4)"})
    lora_alpha: Optional[float] = field(
        default=None, metadata={"help": "scaling numerator, update = alpha/rank * B@A (default: lora 16, minlora 1)"})
    lora_dropout: Optional[float] = field(
        default=None, metadata={"help": "dropout on the adapters' input (default: lora 0.05, minlora 0)"})
    lora_targets: Optional[str] = field(
        default=None, metadata={"help": "comma-separated layer names (k_proj, fc1, embed_tokens, "
                                        "decoder.output_projection, ...) or all-linear "
                                        "(default: lora k_proj,v_proj, minlora all-linear)"})
    lora_train_biases: bool = field(default=False, metadata={"help": "also train every bias"})
    lora_train_layernorms: bool = field(default=False, metadata={"help": "also train LayerNorm weights and biases"})
    lora_adapters: Optional[str] = field(
        default=None, metadata={"help": "start from the adapters in this file (from `fairseq-relpos merge "
                                        "--adapters-only`); options left unset are taken from it"})


@register_task("translation_lora", dataclass=TranslationLoRAConfig)
class TranslationLoRATask(DocumentBatchingMixin, DocumentGenerationTask, TranslationTask):
    cfg: TranslationLoRAConfig

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if getattr(model, "lora_spec", None) is not None:  # rebuilt from a LoRA checkpoint
            if self.cfg.lora_adapters:
                raise ValueError("this checkpoint already has adapters; --lora-adapters applies to a plain base")
            return model
        payload = self._read_adapters()
        lora.wrap(model, self._spec(payload))
        if payload is not None:
            lora.load_adapters(model, payload, cfg.arch, self.cfg.lora_adapters)
        lora_transformer.mark(cfg, model)
        logger.info(lora.summary(model))
        return model

    def _read_adapters(self):
        if not self.cfg.lora_adapters:
            return None
        payload = safe_torch_load(self.cfg.lora_adapters)
        if not isinstance(payload, dict) or "lora_spec" not in payload or "tensors" not in payload:
            raise ValueError(f"{self.cfg.lora_adapters} is not an adapters file (fairseq-relpos merge --adapters-only)")
        return payload

    def _spec(self, payload):
        given = dict(style=self.cfg.lora_style, rank=self.cfg.lora_rank, alpha=self.cfg.lora_alpha,
                     dropout=self.cfg.lora_dropout, targets=self.cfg.lora_targets,
                     train_biases=self.cfg.lora_train_biases, train_layernorms=self.cfg.lora_train_layernorms)
        if payload is None:
            given["style"] = given["style"] or "lora"
        else:
            saved = payload["lora_spec"]
            if given["style"] not in (None, saved["style"]):
                raise ValueError(f"--lora-style {given['style']} contradicts --lora-adapters {self.cfg.lora_adapters}, "
                                 f"which holds {saved['style']} adapters: leave --lora-style out (it is the file's)")
            given = {k: saved[k] if v is None or v is False else v for k, v in given.items()}
        return lora.resolve(**given)
