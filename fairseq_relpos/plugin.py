"""What ``--user-dir`` loads: the run-time adaptations of fairseq (:mod:`.fairseq_patches`),
then every registered model and task."""
from . import fairseq_patches

fairseq_patches.install()

from . import models  # noqa: E402,F401
from . import tasks  # noqa: E402,F401
