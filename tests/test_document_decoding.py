"""Every document is decoded under any task with the plugin loaded; translation_doc names over-long
ones; a split with nothing to decode is one clear error."""
import logging
import re

import pytest
import torch
from fairseq.data import Dictionary, LanguagePairDataset
from fairseq.tasks.translation import TranslationTask

from fairseq_helpers import PLUGIN, hypotheses, preprocess, run, train
from fairseq_relpos.cli import main as cli
from fairseq_relpos.corpora import toy as toydata
from fairseq_relpos.fairseq_patches import NoInputError
from fairseq_relpos.tasks.over_long_inputs import MAX_LISTED, InputTooLongError
from fairseq_relpos.tasks.translation_doc import TranslationDocConfig, TranslationDocTask
from fairseq_relpos.tasks.translation_lora import TranslationLoRAConfig, TranslationLoRATask

CONFIGS = {TranslationDocTask: TranslationDocConfig, TranslationLoRATask: TranslationLoRAConfig,
           TranslationTask: TranslationDocConfig}

# ---- in process: the batching policy itself ----------------------------------------------------


def make_task(cls, lengths):
    d = Dictionary()
    for w in "abc":
        d.add_symbol(w)
    tokens = [torch.full((n,), d.index("a"), dtype=torch.long) for n in lengths]
    task = cls(CONFIGS[cls](source_lang="src", target_lang="tgt", train_subset="train"), d, d)
    for split in ("train", "test"):
        task.datasets[split] = LanguagePairDataset(tokens, lengths, d, tokens, lengths, d, shuffle=False)
    return task


def batches(task, split, **options):
    itr = task.get_batch_iterator(task.datasets[split], max_tokens=12000, required_batch_size_multiple=8,
                                  max_positions=(1024, 1024), **options)
    return [[int(i) for i in batch] for batch in itr.frozen_batches]


@pytest.mark.parametrize("n,max_sentences", [(5, None), (100, None), (100, 20)])
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("cls", [TranslationTask, TranslationDocTask, TranslationLoRATask])
def test_every_input_of_every_split_is_batched(cls, split, n, max_sentences):
    """fairseq 0.12.2's batching: each input once, every batch but the last a multiple of 8 within
    the limits, the remainder a last, smaller batch (fairseq main drops it)."""
    made = batches(make_task(cls, [3 + i % 7 for i in range(n)]), split, max_sentences=max_sentences)
    assert sorted(i for batch in made for i in batch) == list(range(n))
    full = (max_sentences or n) // 8 * 8  # --max-tokens never binds here
    assert [len(batch) for batch in made] == ([full] * (n // full) + [n % full] if full else [n])


@pytest.mark.parametrize("cls", [TranslationTask, TranslationDocTask])
def test_a_split_with_no_input_left_is_an_error_an_inference_batch_is_not(cls):
    """fairseq-generate/validate/train batch a loaded split: all of it skipped is an error.
    fairseq-interactive batches lines on the fly: skipping them all when asked is not."""
    task = make_task(cls, [40, 50])
    options = dict(max_tokens=1000, max_positions=(30, 30), ignore_invalid_inputs=True)
    with pytest.raises(NoInputError, match="split 'test' has no input left to batch: all 2 inputs"):
        task.get_batch_iterator(task.datasets["test"], **options)
    lines = task.build_dataset_for_inference([torch.full((40,), 4)], [40])
    assert len(task.get_batch_iterator(lines, **options)) == 0


def test_over_long_inputs_are_named(caplog):
    task = make_task(TranslationDocTask, [5, 40, 6, 50, 7])
    with pytest.raises(InputTooLongError, match=r"2 input\(s\) longer .*#1 \(line 2, 40/40 tokens\), #3 \(line 4"):
        task.get_batch_iterator(task.datasets["test"], max_tokens=1000, max_positions=(30, 30))
    with caplog.at_level(logging.WARNING):
        itr = task.get_batch_iterator(task.datasets["test"], max_tokens=1000, max_positions=(30, 30),
                                      ignore_invalid_inputs=True)
    assert sorted(int(i) for b in itr.frozen_batches for i in b) == [0, 2, 4]
    assert "#1 (line 2" in caplog.text and "#3 (line 4" in caplog.text


def test_skipped_inputs_are_counted_and_the_first_ones_named(caplog):
    """A split of thousands of over-long documents must not log thousands of ids on one line."""
    n = MAX_LISTED + 70
    task = make_task(TranslationDocTask, [5] + [40] * n)
    with caplog.at_level(logging.WARNING):
        task.get_batch_iterator(task.datasets["test"], max_tokens=1000, max_positions=(30, 30),
                                ignore_invalid_inputs=True)
    said = caplog.text
    assert f"skipping {n} input(s) longer than max positions" in said
    named = [int(i) for i in re.findall(r"#(\d+) \(line", said)]
    assert named == list(range(1, MAX_LISTED + 1)) and said.rstrip().endswith(
        "and 70 more (--skip-invalid-size-inputs-valid-test)")


# ---- the real fairseq-generate on toy documents ------------------------------------------------

GENERATE = ["--beam", "1", "--max-len-a", "0", "--max-len-b", "8"]  # untrained: keep outputs short


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("docdecode")
    corpus = toydata.write_toy_corpus(root / "raw", train_sentences=100, valid_sentences=10,
                                      test_sentences=5, train_documents=2, test_documents=25)
    raw = corpus.root
    for side in ("src", "tgt"):  # five documents, and the hundred of test-doc2
        lines = (raw / f"test-doc4.{side}").read_text().splitlines()[:5]
        (raw / f"five.{side}").write_text("".join(line + "\n" for line in lines))
        (raw / f"hundred.{side}").write_text((raw / f"test-doc2.{side}").read_text())
        (raw / f"empty.{side}").write_text("")
    data = preprocess(raw, root / "bin", splits=("train", "valid", "five", "hundred", "empty"))
    train(data, root / "ckpt", "transformer_rope", "--max-tokens", "4000", updates=10)
    return data, root / "ckpt" / "checkpoint_last.pt", raw


def generate(model, subset, *extra, task="translation_doc", check=True):
    data, checkpoint, _ = model
    return run("generate", data, "--user-dir", PLUGIN, "--task", task, "--path", checkpoint,
               "--gen-subset", subset, *GENERATE, *extra, check=check)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["translation", "translation_doc"])
@pytest.mark.parametrize("subset,n", [("test", 5), ("test1", 100)])
def test_generate_returns_every_document_with_default_batch_flags(model, subset, n, task, tmp_path):
    proc = generate(model, subset, task=task)
    assert sorted(hypotheses(proc.stdout)) == list(range(n))
    (tmp_path / "gen.out").write_text(proc.stdout)
    (tmp_path / "gen.log").write_text(proc.stderr)
    ref = model[2] / ("five.tgt" if n == 5 else "hundred.tgt")
    assert cli.main(["evaluate", "--generate", str(tmp_path / "gen.out"), "--ref", str(ref)]) == 0
    assert cli.main(["evaluate", "--generate", str(tmp_path / "gen.out"), "--log", str(tmp_path / "gen.log")]) == 0
    # the log counts the inputs: one output line less is caught without the references
    cut = [line for line in proc.stdout.splitlines() if not line.split("\t")[0].endswith(f"-{n - 1}")]
    (tmp_path / "cut.out").write_text("\n".join(cut) + "\n")
    assert cli.main(["evaluate", "--generate", str(tmp_path / "cut.out"), "--log", str(tmp_path / "gen.log")]) == 2


@pytest.mark.slow
def test_generate_names_over_long_documents(model):
    proc = generate(model, "test", "--max-source-positions", "30", check=False)
    assert proc.returncode != 0
    src = (model[2] / "five.src").read_text().splitlines()
    too_long = [i for i, line in enumerate(src) if len(line.split()) + 1 > 30]  # + </s>
    assert too_long and f"{len(too_long)} input(s) longer than max positions" in proc.stderr
    for i in too_long:
        assert f"#{i} (line {i + 1}," in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("task", ["translation", "translation_doc"])
@pytest.mark.parametrize("case", ["empty split", "every input too long"])
def test_nothing_to_decode_is_one_clear_error(model, task, case):
    if case == "empty split":
        proc = generate(model, "test2", task=task, check=False)
        expected = f"NoInputError: {model[0] / 'test2.src-tgt.src.bin'} is empty: this split has no sentences"
    else:
        proc = generate(model, "test", "--max-source-positions", "3", "--skip-invalid-size-inputs-valid-test",
                        task=task, check=False)
        expected = "NoInputError: split 'test' has no input left to batch: all 5 inputs are longer than max positions"
    assert proc.returncode != 0 and not hypotheses(proc.stdout)
    raised = [line for line in proc.stderr.splitlines() if re.match(r"[\w.]*(Error|Exception)\b", line)]
    assert len(raised) == 1 and expected in raised[0], proc.stderr[-3000:]
