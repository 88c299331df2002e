"""Print the plugin's folder for fairseq's --user-dir, so that fairseq finds it from any folder.

Use ``--user-dir "$(fairseq-relpos user-dir)"``. fairseq resolves a relative ``--user-dir``
against the working directory (then next to its own package, where an editable install puts
nothing), so ``--user-dir fairseq_relpos`` works only from the repository root. The printed
folder is the package Python imports (this checkout under the editable install), which is also
what fairseq requires when the plugin was imported before it: any other spelling of the folder,
such as a link to it in site-packages, is refused as "not globally unique". That is why set-up
does not link the package into site-packages instead.
"""
import fairseq_relpos


def add_arguments(parser):
    """No options."""


def main(args):
    print(fairseq_relpos.__path__[0])
