"""Subcommands of ``fairseq-relpos``; see ``fairseq_relpos.cli``."""
