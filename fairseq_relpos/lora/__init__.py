"""Low-rank adapters for fairseq models: loralib layers ("lora") or parametrizations ("minlora")."""
from .spec import STYLE_DEFAULTS, resolve  # noqa: F401
from .state import adapters_payload, load_adapters, merged_state  # noqa: F401
from .wrap import count, summary, wrap  # noqa: F401
