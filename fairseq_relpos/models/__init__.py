from . import fork_architectures, indictrans2, relative_transformer  # noqa: F401  (registers architectures)
