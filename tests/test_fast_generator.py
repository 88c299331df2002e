"""The document generator (``fairseq_relpos.generation``) decodes exactly as stock fairseq.

In-process: tiny models trained for a few seconds on a copy task (so that sentences end at
different steps and batches shrink mid-decoding), decoded by stock ``SequenceGenerator`` (the
base ``FairseqTask.build_generator``) and by the task's own generator, compared to the bit:
tokens, scores, positional scores, attention and alignments. Slow: the fairseq CLIs.
"""
from argparse import Namespace

import pytest
import torch
from fairseq.data import data_utils
from fairseq.sequence_generator import SequenceGenerator
from fairseq.sequence_scorer import SequenceScorer
from fairseq.tasks.fairseq_task import FairseqTask

from fairseq_helpers import PLUGIN, preprocess, run, train, write_reversal_corpus
from fairseq_relpos.generation import DocumentSequenceGenerator, DocumentSequenceGeneratorWithAlignment
from model_builders import build, write_dicts

KINDS = {  # name: (arch, extra options)
    "sinusoidal": ("transformer", []),
    "rope": ("transformer_rope", []),
    "alibi": ("transformer_alibi", []),
    "nope": ("transformer_nope", []),
    "lora": ("transformer_rope", ["--task", "translation_lora", "--lora-style", "lora"]),
    "minlora": ("transformer", ["--task", "translation_lora", "--lora-style", "minlora"]),
}
SEARCHES = {  # name: (generation options, prefix length)
    "greedy": (dict(beam=1), 0),
    "beam4": (dict(beam=4), 0),
    "sampling": (dict(beam=3, sampling=True, sampling_topk=8), 0),
    "prefix": (dict(beam=4), 2),
    "unnormalized-lenpen": (dict(beam=3, unnormalized=True, lenpen=0.5), 0),
}


def copy_batch(task, lengths, seed):
    """A batch whose targets copy their (left-padded) sources: the length is learnable."""
    g = torch.Generator().manual_seed(seed)
    sd, td = task.source_dictionary, task.target_dictionary
    seqs = [torch.cat([torch.randint(sd.nspecial, len(sd), (int(n),), generator=g), torch.tensor([sd.eos()])])
            for n in lengths]
    src = data_utils.collate_tokens(seqs, sd.pad(), sd.eos(), left_pad=True)
    target = data_utils.collate_tokens(seqs, td.pad(), td.eos())
    prev = data_utils.collate_tokens(seqs, td.pad(), td.eos(), move_eos_to_beginning=True)
    return {"id": torch.arange(len(seqs)), "target": target,
            "net_input": {"src_tokens": src, "src_lengths": torch.tensor([len(s) for s in seqs]),
                          "prev_output_tokens": prev}}


def train_copy(task, model, steps=60):
    """A few seconds of Adam on random copy batches, every parameter (adapters included)."""
    torch.manual_seed(0)
    model.train()
    params = [p.requires_grad_(True) for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        sample = copy_batch(task, torch.randint(2, 30, (32,), generator=g).tolist(), seed=step)
        out = model(**sample["net_input"])
        lprobs = model.get_normalized_probs(out, log_probs=True)
        loss = torch.nn.functional.nll_loss(lprobs.view(-1, lprobs.size(-1)), sample["target"].view(-1),
                                            ignore_index=task.target_dictionary.pad())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    dicts = write_dicts(tmp_path_factory.mktemp("dicts"))
    built = {}

    def get(kind):
        if kind not in built:
            arch, extra = KINDS[kind]
            extra = extra if "--task" in extra else ["--task", "translation_doc", *extra]
            torch.manual_seed(0)  # the same weights whichever tests ran before
            task, model, _ = build(dicts, arch, extra=extra)
            built[kind] = task, train_copy(task, model)
        return built[kind]

    return get


def generators(task, model, **options):
    args = Namespace(max_len_a=1.2, max_len_b=10, **options)
    return FairseqTask.build_generator(task, [model], args), task.build_generator([model], args)


def decode(generator, model, sample, prefix=0, seed=None):
    if seed is not None:
        torch.manual_seed(seed)
    prefix_tokens = sample["target"][:, :prefix] if prefix else None
    return generator.generate([model], sample, prefix_tokens=prefix_tokens)


def assert_identical(stock, ours, attention=False):
    """Every entry of every hypothesis equal; "attention" (the source attention of each step,
    which fairseq reads only to print alignments) only when alignments are asked for: without,
    stock fills it and the document generator leaves it empty, as it keeps no attention."""
    assert len(stock) == len(ours)
    for stock_hyps, our_hyps in zip(stock, ours):
        assert len(stock_hyps) == len(our_hyps)
        for a, b in zip(stock_hyps, our_hyps):
            assert a.keys() == b.keys()
            for key in a:
                if key == "attention" and not attention:
                    assert b[key].numel() == 0
                elif isinstance(a[key], torch.Tensor):
                    assert torch.equal(a[key], b[key]), key
                else:
                    assert a[key] == b[key], key  # hard alignments: (source, target) pairs


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("kind", KINDS)
def test_same_output_as_stock(models, kind, search):
    task, model = models(kind)
    options, prefix = SEARCHES[search]
    stock, ours = generators(task, model, **options)
    assert type(stock) is SequenceGenerator and type(ours) is DocumentSequenceGenerator
    sample = copy_batch(task, [25, 3, 17, 9, 28, 5, 12, 21], seed=7)
    seed = 3 if options.get("sampling") else None
    stock_out = decode(stock, model, sample, prefix, seed)
    assert_identical(stock_out, decode(ours, model, sample, prefix, seed))
    assert len({len(h[0]["tokens"]) for h in stock_out}) > 2  # sentences ended at different steps


@pytest.mark.parametrize("kind", ["sinusoidal", "alibi"])
@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_alignments_equal_stock(models, kind, mode):
    task, model = models(kind)
    stock, ours = generators(task, model, beam=4, print_alignment=mode)
    assert type(ours) is DocumentSequenceGeneratorWithAlignment
    sample = copy_batch(task, [14, 4, 22, 9], seed=2)
    stock_out = decode(stock, model, sample)
    assert stock_out[0][0]["attention"].numel() > 0 and len(stock_out[0][0]["alignment"]) > 0
    assert_identical(stock_out, decode(ours, model, sample), attention=True)


@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize("kind", ["sinusoidal", "rope", "alibi"])
def test_long_documents_of_very_different_lengths(models, kind, beam):
    """Sources of 2 to 300 tokens in one batch: it shrinks several times while the longest
    outputs are still being decoded."""
    task, model = models(kind)
    stock, ours = generators(task, model, beam=beam)
    sample = copy_batch(task, [300, 4, 150, 40, 9, 220, 2, 80], seed=11)
    stock_out = decode(stock, model, sample)
    assert_identical(stock_out, decode(ours, model, sample))
    lengths = [len(h[0]["tokens"]) for h in stock_out]
    assert len(set(lengths)) > 2 and (beam > 1 or max(lengths) > 40)  # several shrinks, a long tail


@pytest.mark.parametrize("options", [dict(beam=1), dict(beam=4), dict(beam=4, print_alignment="hard")],
                         ids=["greedy", "beam4", "alignment"])
def test_an_ensemble_decodes_as_stock(models, options):
    """``--path a.pt:b.pt:c.pt``: three models of different kinds averaged in log space."""
    task, rope = models("rope")
    ensemble = [rope, models("alibi")[1], models("sinusoidal")[1]]
    stock = FairseqTask.build_generator(task, ensemble, Namespace(max_len_a=1.2, max_len_b=10, **options))
    ours = task.build_generator(ensemble, Namespace(max_len_a=1.2, max_len_b=10, **options))
    assert type(ours) in (DocumentSequenceGenerator, DocumentSequenceGeneratorWithAlignment)
    sample = copy_batch(task, [25, 3, 17, 9, 28, 5], seed=5)
    stock_out = stock.generate(ensemble, sample)
    assert_identical(stock_out, ours.generate(ensemble, sample), attention="print_alignment" in options)
    alone = decode(generators(task, rope, **options)[0], rope, sample)
    assert any(not torch.equal(a[0]["positional_scores"], b[0]["positional_scores"]) for a, b in zip(alone, stock_out))


@pytest.mark.parametrize("kind", ["rope", "alibi"])
def test_retain_dropout_samples_as_stock(models, kind, monkeypatch):
    """``--retain-dropout``: dropout stays on while decoding; with one seed, the document
    generator draws the same masks as stock, and the output differs from dropout off."""
    from fairseq.modules.fairseq_dropout import FairseqDropout
    task, model = models(kind)
    stock, ours = generators(task, model, beam=3)
    sample = copy_batch(task, [20, 4, 13, 8], seed=9)
    without = decode(stock, model, sample)
    for module in model.modules():
        if isinstance(module, FairseqDropout):
            monkeypatch.setattr(module, "p", 0.3)
            monkeypatch.setattr(module, "apply_during_inference", True)
    stock_out = decode(stock, model, sample, seed=4)
    assert_identical(stock_out, decode(ours, model, sample, seed=4))
    assert any(not torch.equal(a[0]["positional_scores"], b[0]["positional_scores"]) for a, b in zip(without, stock_out))


def test_copies_only_when_the_batch_shrinks(models, monkeypatch):
    """Greedy search: the encoder output and the decoder caches are gathered once per step at
    which sentences were removed from the batch, never at the steps in between (stock: every
    step). The step after the last removal ends decoding, so it reorders nothing."""
    task, model = models("rope")
    calls = {"encoder": 0, "cache": 0}
    encoder_reorder = model.encoder.reorder_encoder_out
    cache_reorder = model.decoder.layers[0].self_attn.reorder_incremental_state

    def count(name, method):
        def counted(*args):
            calls[name] += 1
            return method(*args)
        return counted

    monkeypatch.setattr(model.encoder, "reorder_encoder_out", count("encoder", encoder_reorder))
    monkeypatch.setattr(model.decoder.layers[0].self_attn, "reorder_incremental_state", count("cache", cache_reorder))
    stock, ours = generators(task, model, beam=1)
    sample = copy_batch(task, [20, 3, 11, 7, 26, 5], seed=4)
    hyps = decode(ours, model, sample)
    finishing_steps = {len(h[0]["tokens"]) for h in hyps}
    assert calls == {"encoder": len(finishing_steps) - 1, "cache": len(finishing_steps) - 1}
    calls.update(encoder=0, cache=0)
    assert_identical(decode(stock, model, sample), hyps)
    assert calls["encoder"] == max(finishing_steps) and calls["cache"] == max(finishing_steps) - 1


def test_score_reference_stays_stock(models):
    task, model = models("rope")
    scorer = task.build_generator([model], Namespace(score_reference=True, beam=4))
    assert type(scorer) is SequenceScorer


# fairseq's command-line tools, on one tiny checkpoint trained by fairseq-train.

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastgen")
    raw = write_reversal_corpus(root / "raw", sizes=(("train", 600), ("valid", 20), ("test", 12)),
                                lengths=(2, 40))
    data = preprocess(raw, root / "bin")
    train(data, root / "ckpt", "transformer_alibi", "--max-tokens", "3000", updates=40)
    return data, root / "ckpt" / "checkpoint_last.pt", raw


def output_lines(text):
    """fairseq-generate/interactive output without its timing (W-) and logging lines."""
    return [line for line in text.splitlines() if line[:2] in ("S-", "T-", "H-", "D-", "P-", "A-")]


@pytest.mark.slow
@pytest.mark.parametrize("flags", [
    ["--beam", "1"],
    ["--beam", "4", "--nbest", "4"],
    ["--beam", "4", "--print-alignment"],
    ["--beam", "2", "--nbest", "2", "--sampling", "--sampling-topk", "5", "--seed", "7"],
    ["--beam", "4", "--prefix-size", "2"],
    ["--score-reference"],
])
def test_generate_cli_equals_stock(checkpoint, flags):
    data, path, _ = checkpoint
    outputs = []
    for task in ("translation", "translation_doc"):
        proc = run("generate", data, "--user-dir", PLUGIN, "--task", task, "--path", path,
                   "--max-len-a", "1.2", "--max-len-b", "5", "--batch-size", "6", *flags)
        outputs.append(output_lines(proc.stdout))
    assert outputs[0] and outputs[0] == outputs[1]
    if "--print-alignment" in flags:
        assert any(line.startswith("A-") and line.split("\t")[1] for line in outputs[0])


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["--beam", "4"], ["--beam", "2", "--retain-dropout", "--seed", "5"]])
def test_generate_cli_ensemble_equals_stock(checkpoint, flags):
    """``--path a.pt:b.pt`` (an ALiBi and a RoPE model), and ``--retain-dropout`` on it."""
    data, path, _ = checkpoint
    rope = path.parent.parent / "rope"
    if not rope.exists():  # trained once, for both cases
        train(data, rope, "transformer_rope", "--max-tokens", "3000", updates=20)
    both = f"{path}:{rope / 'checkpoint_last.pt'}"
    outputs = {}
    for task, models in (("translation", both), ("translation_doc", both), ("translation_doc", str(path))):
        proc = run("generate", data, "--user-dir", PLUGIN, "--task", task, "--path", models,
                   "--max-len-a", "1.2", "--max-len-b", "5", "--batch-size", "6", *flags)
        outputs[task, models] = output_lines(proc.stdout)
    stock, ours, alone = outputs.values()
    assert stock and stock == ours and ours != alone


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["--beam", "1"], ["--beam", "4", "--nbest", "2"]])
def test_interactive_cli_equals_stock(checkpoint, flags):
    data, path, raw = checkpoint
    text = (raw / "test.src").read_text()
    outputs = []
    for task in ("translation", "translation_doc"):
        proc = run("interactive", data, "--user-dir", PLUGIN, "--task", task, "--path", path,
                   "--source-lang", "src", "--target-lang", "tgt", "--buffer-size", "4", "--batch-size", "4",
                   "--max-len-a", "1.2", "--max-len-b", "5", *flags, stdin=text)
        outputs.append(output_lines(proc.stdout))
    assert len([line for line in outputs[0] if line.startswith("H-")]) >= len(text.splitlines())
    assert outputs[0] == outputs[1]
