"""Options that several commands take with the same meaning, declared once (no heavy imports)."""


def add_dictionary_options(parser):
    """Where a checkpoint's dictionaries are (``export``, ``export-hf``)."""
    parser.add_argument("--data", metavar="DIR",
                        help="folder holding the checkpoint's dict.*.txt (default: the data folder "
                             "saved in the checkpoint)")
    parser.add_argument("--source-lang", metavar="SRC",
                        help="source suffix of the dictionary, dict.SRC.txt (default: the checkpoint's, "
                             "else inferred from --data's data files as fairseq does; IndicTrans2 releases: SRC)")
    parser.add_argument("--target-lang", metavar="TGT", help="target suffix likewise (IndicTrans2: TGT)")


def add_sentencepiece_option(parser, how):
    """A corpus command's optional joint SentencePiece model; ``how`` says how it is trained."""
    parser.add_argument("--sentencepiece", type=int, metavar="VOCAB",
                        help=f"also train a joint SentencePiece model of about VOCAB pieces {how}")


def check_sentencepiece(args):
    if args.sentencepiece is not None and args.sentencepiece < 10:
        raise ValueError("--sentencepiece needs a vocabulary size of at least 10")
