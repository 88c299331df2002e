"""Low-rank adapters for fairseq models: loralib layers ("lora") or parametrizations ("minlora")."""
from .spec import STYLE_DEFAULTS, resolve  # noqa: F401
from .wrap import (adapters_payload, count, load_adapters, merged_state, summary,  # noqa: F401
                   wrap)
