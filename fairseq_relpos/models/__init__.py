from . import architectures  # noqa: F401  (registers every architecture, and so the models)
