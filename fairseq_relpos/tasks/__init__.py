"""fairseq tasks registered by the plugin (importing a module registers its task)."""
from . import translation_doc  # noqa: F401
from . import translation_lora  # noqa: F401
