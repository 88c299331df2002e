"""Fixtures shared by several test modules; the helpers they use live in fairseq_helpers.py,
model_builders.py and indictrans2_dir.py (on the path through pytest.ini's ``pythonpath``)."""
import pytest

# In-process tests build the plugin's models as fairseq does after --user-dir: registered once,
# whichever test module imports fairseq_relpos first (a light import registers nothing).
import fairseq_relpos.plugin  # noqa: F401
from fairseq_helpers import make_reversal_base
from indictrans2_dir import make_indictrans2_dir


@pytest.fixture(scope="session")
def reversal_base(tmp_path_factory):
    """(data dir, sinusoidal base checkpoint, its valid loss), trained once per session."""
    return make_reversal_base(tmp_path_factory.mktemp("reversal"))


@pytest.fixture(scope="session")
def it2(tmp_path_factory):
    """(IndicTrans2-shaped directory, raw text directory), built once per session."""
    return make_indictrans2_dir(tmp_path_factory.mktemp("it2"))


@pytest.fixture(scope="module")
def dicts(tmp_path_factory):
    """Dictionaries of 40 words per side, for models built in-process."""
    from model_builders import write_dicts  # torch and fairseq only for the tests that need them

    return write_dicts(tmp_path_factory.mktemp("dicts"))
