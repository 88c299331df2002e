"""fairseq-relpos: relative positions (RoPE, ALiBi) for pre-trained fairseq translation models.

fairseq imports this package through ``--user-dir``; fairseq is loaded by then, and the package
registers its architectures and tasks and installs its run-time adaptations of fairseq
(:mod:`fairseq_relpos.plugin`). Imported without fairseq (the ``fairseq-relpos`` command, the
CTranslate2 helpers, scoring, corpora) it loads neither torch nor fairseq; code that needs the
models imports ``fairseq_relpos.plugin``.
"""
import sys

__version__ = "0.1.0"

if "fairseq" in sys.modules:
    from . import plugin  # noqa: F401
