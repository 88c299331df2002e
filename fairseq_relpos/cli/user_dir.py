"""Print the plugin's folder for fairseq's --user-dir, so that fairseq finds it from any folder.

Use ``--user-dir "$(fairseq-relpos user-dir)"``. fairseq resolves a relative ``--user-dir``
against the working directory, then beside its own package, where ``scripts/bootstrap.sh``
links the editable checkout (a regular install puts the package there itself); the printed
folder is the package Python imports, which works wherever fairseq would look. A process that
imported the package before fairseq may hand fairseq this folder or any other spelling of it
(the link): the package's ``__path__`` accepts every spelling and installs the plugin then
(see ``fairseq_relpos/__init__.py``).
"""
import fairseq_relpos


def add_arguments(parser):
    """No options."""


def main(args):
    print(fairseq_relpos.__path__[0])
