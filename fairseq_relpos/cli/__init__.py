"""The ``fairseq-relpos`` command (:mod:`.main`): one thin module per subcommand, which imports
the library it calls (torch, fairseq) only when it runs."""
