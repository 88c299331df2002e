"""One start-from-checkpoint policy for every architecture (``fairseq_relpos.starting_checkpoint``):
a --restore-file that names no checkpoint file is an error, never training from scratch."""
import pytest

import fairseq_helpers as h
from model_builders import RESETS, load_like_fairseq_train, start_argv

TINY = [str(a) for a in h.TINY]
ARCHS = ["transformer", "transformer_18_18", "transformer_IT2_dist", "transformer_rope"]


@pytest.mark.parametrize("task", [[], ["--task", "translation_lora"]])
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("bad", ["typo.pt", "folder"])
def test_a_restore_file_that_is_no_checkpoint_file_is_refused_by_name(dicts, tmp_path, arch, task, bad):
    (tmp_path / "folder").mkdir()
    argv = start_argv(dicts, tmp_path / "save", arch, tmp_path / bad, "restore", *TINY, *task,
                      "--source-lang", "src", "--target-lang", "tgt")
    with pytest.raises(FileNotFoundError, match=rf"--restore-file \S*{bad}"):
        load_like_fairseq_train(argv)


@pytest.mark.slow
def test_indictrans2s_form_with_a_mistyped_restore_file_stops_before_training(reversal_base, tmp_path):
    data, _, _ = reversal_base
    save = tmp_path / "save"
    proc = h.fairseq_train(data, save, "transformer_18_18", "--restore-file", tmp_path / "typo.pt", *RESETS,
                           updates=2, check=False)
    assert proc.returncode != 0
    assert f"--restore-file {tmp_path / 'typo.pt'}: no such checkpoint file" in proc.stderr
    assert not list(save.glob("*.pt"))
