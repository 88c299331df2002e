"""fairseq-relpos: relative positions (RoPE, ALiBi) for pre-trained fairseq translation models.

Imported by fairseq through ``--user-dir``; importing registers the architectures and tasks
and installs the plugin's run-time adaptations of fairseq (see ``adaptations``).
"""
from . import adaptations

adaptations.install()

from . import models  # noqa: E402,F401
from . import tasks  # noqa: E402,F401

__version__ = "0.1.0"
