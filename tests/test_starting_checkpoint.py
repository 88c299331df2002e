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


class _Chosen(Exception):
    pass


class _Trainer:
    """What fairseq's load_checkpoint needs of a trainer, stopping at the file it chose."""

    def __init__(self, suffix):
        self.checkpoint_suffix = suffix

    def load_checkpoint(self, path, *args, **kwargs):
        raise _Chosen(path)


@pytest.mark.parametrize("case", ["scratch", "resume, base moved", "finetune", "restore", "restore, suffix"])
def test_the_policy_names_the_file_fairseq_loads(tmp_path, case):
    import os

    from fairseq import checkpoint_utils
    from fairseq.dataclass.configs import CheckpointConfig
    from omegaconf import OmegaConf

    from fairseq_relpos.starting_checkpoint import starting_checkpoint

    save, base = tmp_path / "save", tmp_path / "base.pt"
    save.mkdir()
    options = {"save_dir": str(save)}
    suffix = "-x" if "suffix" in case else ""
    if case.startswith("resume"):
        (save / "checkpoint_last.pt").write_bytes(b"")
        options["finetune_from_model"] = str(base)
    elif case == "finetune":
        base.write_bytes(b"")
        options["finetune_from_model"] = str(base)
    elif case.startswith("restore"):
        (tmp_path / f"start{suffix}.pt").write_bytes(b"")
        options.update(restore_file=str(tmp_path / "start.pt"), reset_optimizer=True)
    cfg = OmegaConf.structured(CheckpointConfig(**options))
    with pytest.raises(_Chosen) as chosen:
        checkpoint_utils.load_checkpoint(cfg, _Trainer(suffix))
    fairseqs = str(chosen.value)
    ours = starting_checkpoint(cfg, suffix)
    assert (ours[0] if ours else None) == (fairseqs if os.path.isfile(fairseqs) else None)
