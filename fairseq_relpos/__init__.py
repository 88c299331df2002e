"""fairseq-relpos: relative positions (RoPE, ALiBi) for pre-trained fairseq translation models.

fairseq imports this package through ``--user-dir``; fairseq is loaded by then, and the package
registers its architectures and tasks and installs its run-time adaptations of fairseq
(:mod:`fairseq_relpos.plugin`). Imported without fairseq (the ``fairseq-relpos`` command, the
CTranslate2 helpers, scoring, corpora) it loads neither torch nor fairseq; code that needs the
models imports ``fairseq_relpos.plugin``, and a later --user-dir installs the plugin too
(:class:`_Folders`).
"""
import os
import sys

__version__ = "0.1.0"


def _install():
    from . import plugin  # noqa: F401


class _Folders(list):
    """This package's ``__path__``, with one change: asking whether a folder is in it, once
    fairseq is loaded, installs the plugin.

    fairseq's ``import_user_module`` (0.12.2 and main alike) imports a --user-dir only when its
    module name is not in ``sys.modules`` yet; when it is, the test ``folder in
    module.__path__`` decides between "already imported" (nothing more is done) and "not
    globally unique" (an error). A light import before fairseq (scoring, the CTranslate2 helpers)
    puts the name there without the plugin, so "already imported" would leave fairseq with no
    architectures, no weights-only pre-read of checkpoints on torch < 2.6 and none of
    :mod:`.fairseq_patches`. Here that test is the moment of installing. The folder is compared
    by its real path, so every spelling fairseq resolves (a link beside fairseq's own package,
    ``fairseq/../fairseq_relpos``) counts as this folder, as it would on a first import.
    """

    def __contains__(self, folder):
        try:
            real = os.path.realpath(folder)
        except (TypeError, ValueError):
            return list.__contains__(self, folder)
        found = any(os.path.realpath(entry) == real for entry in self)
        if found and "fairseq" in sys.modules:
            _install()
        return found


__path__ = _Folders(__path__)

if "fairseq" in sys.modules:
    _install()
