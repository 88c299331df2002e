"""fairseq-relpos: offline tools around the plugin (checkpoints, documents, evaluation).

One subcommand per module of ``fairseq_relpos.cli`` named in :data:`COMMANDS`; each defines a
docstring, ``add_arguments(parser)`` and ``main(args)``, and imports nothing heavy until
``main`` runs, so that building the parser loads neither torch nor fairseq.
"""
import argparse
import importlib
import logging
import sys

COMMANDS = ("bible_corpus", "convert", "evaluate", "export", "export_hf", "import_hf", "inspect",
            "make_docs", "merge", "toy_corpus", "user_dir")


def _subcommands():
    for name in COMMANDS:
        yield name.replace("_", "-"), importlib.import_module(f"{__package__}.{name}")


def build_parser():
    parser = argparse.ArgumentParser(prog="fairseq-relpos", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _subcommands():
        p = sub.add_parser(name, help=module.__doc__.strip().split("\n")[0], description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(run=module.main)
    return parser


def main(argv=None):
    # fairseq's text_to_speech task configures the root logger at INFO when fairseq is imported,
    # and then says "Please install tensorboardX": configured first, the root logger shows only
    # what is worth a user's attention.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (OSError, ValueError, RuntimeError) as err:  # OSError: unreadable or unwritable files
        print(f"fairseq-relpos {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err):
    """The error without Python's "[Errno 13]" prefix: "Permission denied: OUT"."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    return str(err)


if __name__ == "__main__":
    sys.exit(main())
