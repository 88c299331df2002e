"""--doc-decoding's guarantees on untrained models, in process: sentence counts under aligned and
window for any document, split equals every sentence decoded alone, whole without a separator is
fairseq's own search, the fallback's decision and log line, and one clear line for bad options."""
import logging

import pytest
import torch
from fairseq.dataclass.configs import GenerationConfig
from fairseq.sequence_generator import SequenceGenerator

from model_builders import build
from fairseq_relpos.generation import run_on

SEP = "<s>"


def setup(dicts, *extra, arch="transformer_rope", task="translation_doc", seed=0):
    torch.manual_seed(seed)
    task, model, _ = build(dicts, arch, extra=["--task", task, *extra])
    return task, model


def generator(task, model, beam=4, **gen):
    return task.build_generator([model], GenerationConfig(beam=beam, max_len_a=1.2, max_len_b=5, **gen))


def batch(task, docs, left_pad=True):
    """Documents given as lists of word ids, separators as None."""
    d = task.source_dictionary
    sep = d.index(SEP)
    rows = [torch.tensor([sep if w is None else d.nspecial + w for w in doc] + [d.eos()]) for doc in docs]
    width = max(r.numel() for r in rows)
    src = torch.full((len(rows), width), d.pad())
    for i, r in enumerate(rows):
        if left_pad:
            src[i, width - r.numel():] = r
        else:
            src[i, :r.numel()] = r
    return {"id": torch.arange(len(rows)), "net_input": {"src_tokens": src,
                                                         "src_lengths": torch.tensor([r.numel() for r in rows])}}


def sentences_of(doc):
    """Non-empty runs between separators."""
    runs, run = [], []
    for w in doc + [None]:
        if w is None:
            if run:
                runs.append(run)
            run = []
        else:
            run.append(w)
    return runs


DOCS = [
    [1, 2, 3, None, 4, 5, None, 6, 7, 8, None, 9],          # four sentences
    [None, 1, 2, None, None, 3, None],                       # separators at both ends, one empty between
    [5, 6, 7, 8],                                            # no separator: one sentence
    [3],                                                     # one token
    [1, 2, None, 3, 4, None, 5, 6, None, 7, 8, None, 9, 1, None, 2, 3, None, 4, 5, None, 6],  # eight
]


def hypothesis_sentences(task, tokens):
    sep, eos = task.target_dictionary.index(SEP), task.target_dictionary.eos()
    assert int(tokens[-1]) == eos and (tokens[:-1] != eos).all()
    return sentences_of([None if int(t) == sep else int(t) for t in tokens[:-1]]), \
        [int(t) for t in tokens[:-1]]


@pytest.mark.parametrize("beam", [1, 5])
@pytest.mark.parametrize("mode", ["aligned", "window"])
@pytest.mark.parametrize("arch", ["transformer_rope", "transformer"])
def test_aligned_and_window_keep_every_documents_sentence_count(dicts, mode, beam, arch):
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", mode, "--doc-window", "2", arch=arch)
    out = task.inference_step(generator(task, model, beam=beam), [model], batch(task, DOCS))
    sep = task.target_dictionary.index(SEP)
    for doc, nbest in zip(DOCS, out):
        assert len(nbest) == beam
        for hypo in nbest:
            runs, flat = hypothesis_sentences(task, hypo["tokens"])
            assert len(runs) == len(sentences_of(doc))
            assert flat[0] != sep and flat[-1] != sep  # no empty sentence at either end
            assert all(not (a == b == sep) for a, b in zip(flat, flat[1:]))
            assert hypo["positional_scores"].numel() == hypo["tokens"].numel()


def test_aligned_count_holds_at_a_tight_length_cap(dicts):
    """A cap of fewer tokens than the sentences need is raised to 2 x separators + 1, and the
    search completes the count near its cap."""
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "aligned")
    gen = task.build_generator([model], GenerationConfig(beam=3, max_len_a=0, max_len_b=1))
    out = task.inference_step(gen, [model], batch(task, DOCS))
    for doc, nbest in zip(DOCS, out):
        runs, flat = hypothesis_sentences(task, nbest[0]["tokens"])
        assert len(runs) == len(sentences_of(doc))
        assert len(flat) == 2 * len(runs) - 1  # exactly one token a sentence: the cap binds


def test_aligned_with_nbest_prefix_and_right_padding(dicts):
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "aligned")
    task.cfg.left_pad_source = False
    sample = batch(task, DOCS[:2], left_pad=False)
    d = task.target_dictionary
    prefix = torch.tensor([[d.nspecial + 1], [d.nspecial + 2]])
    out = task.inference_step(generator(task, model, beam=4), [model], sample, prefix_tokens=prefix)
    for doc, nbest, p in zip(DOCS, out, prefix[:, 0].tolist()):
        for hypo in nbest:
            runs, flat = hypothesis_sentences(task, hypo["tokens"])
            assert flat[0] == p and len(runs) == len(sentences_of(doc))


def test_split_is_every_sentence_decoded_alone(dicts):
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "split")
    out = task.inference_step(generator(task, model), [model], batch(task, DOCS))
    alone_task, _ = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "aligned")
    alone = generator(alone_task, model)
    for doc, nbest in zip(DOCS, out):
        runs, _ = hypothesis_sentences(task, nbest[0]["tokens"])
        expected = []
        for sentence in sentences_of(doc):
            one = alone_task.inference_step(alone, [model], batch(alone_task, [sentence]))[0][0]
            expected.append(hypothesis_sentences(alone_task, one["tokens"])[0][0])
        assert runs == expected
        parts = nbest[0]["positional_scores"]
        assert torch.isclose(nbest[0]["score"], parts.sum() / parts.numel())


def test_window_first_sentence_is_splits_and_context_is_forced(dicts):
    """Round 1 has no context: the first sentence is split's; later rounds start from the kept
    translations (the forced prefix), so a window of 1 is split."""
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "window", "--doc-window", "3")
    split_task, _ = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "split")
    one_task, _ = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "window", "--doc-window", "1")
    sample = batch(task, DOCS)
    window = task.inference_step(generator(task, model), [model], sample)
    split = split_task.inference_step(generator(split_task, model), [model], sample)
    one = one_task.inference_step(generator(one_task, model), [model], sample)
    for w, s, o in zip(window, split, one):
        ws, ss, os_ = (hypothesis_sentences(task, x[0]["tokens"])[0] for x in (w, s, o))
        assert ws[0] == ss[0]
        assert os_ == ss


def test_whole_without_separator_is_stock(dicts):
    task, model = setup(dicts)
    sample = batch(task, [[w for w in doc if w is not None] for doc in DOCS])
    ours = task.inference_step(generator(task, model), [model], sample)
    stock = SequenceGenerator([model], task.target_dictionary, beam_size=4, max_len_a=1.2, max_len_b=5)
    theirs = stock.generate([model], sample)
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            assert torch.equal(x["tokens"], y["tokens"])
            assert torch.equal(x["positional_scores"], y["positional_scores"])


@pytest.mark.parametrize("mode", ["whole", "aligned", "window"])
def test_ngram_blocking_under_the_task_and_the_counts_hold(dicts, mode):
    """--no-repeat-ngram-size through the task's generator: no bigram repeats (but those ending in the
    separator, which the count needs), and aligned/window still hold the sentence count. A window
    sees K sentences: with K at least the document's length, that is the whole document."""
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", mode, "--doc-window", "8")
    gen = generator(task, model, beam=3, no_repeat_ngram_size=2)
    sep = task.target_dictionary.index(SEP)
    for doc, nbest in zip(DOCS, task.inference_step(gen, [model], batch(task, DOCS))):
        runs, flat = hypothesis_sentences(task, nbest[0]["tokens"])
        grams = [(a, b) for a, b in zip(flat, flat[1:]) if b != sep]
        assert len(grams) == len(set(grams))
        if mode != "whole":
            assert len(runs) == len(sentences_of(doc))


def test_ngram_window_needs_an_ngram_size(dicts):
    task, model = setup(dicts, "--no-repeat-ngram-window", "8")
    with pytest.raises(ValueError, match="--no-repeat-ngram-window needs --no-repeat-ngram-size"):
        task.build_generator([model], GenerationConfig(beam=2))


def test_lora_task_decodes_aligned(dicts):
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "aligned", "--lora-style", "minlora",
                        task="translation_lora")
    out = task.inference_step(generator(task, model, beam=2), [model], batch(task, DOCS))
    for doc, nbest in zip(DOCS, out):
        assert len(hypothesis_sentences(task, nbest[0]["tokens"])[0]) == len(sentences_of(doc))


def test_separator_is_printed(dicts):
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "split")
    out = task.inference_step(generator(task, model), [model], batch(task, DOCS[:1]))
    printed = task.target_dictionary.string(out[0][0]["tokens"])
    assert printed.count(SEP) == 3 and not printed.startswith(SEP)


def test_fallback_names_each_document_and_counts(dicts, caplog, monkeypatch):
    """A document at its length cap is decoded again in the fallback mode; the log names it and why."""
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "aligned", "--doc-fallback", "split")
    split_task, _ = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "split")
    gen = task.build_generator([model], GenerationConfig(beam=2, max_len_a=0, max_len_b=1))
    split_gen = split_task.build_generator([model], GenerationConfig(beam=2, max_len_a=0, max_len_b=1))
    sample = batch(task, DOCS)
    with caplog.at_level(logging.INFO, logger="fairseq_relpos.generation.modes"):
        out = task.inference_step(gen, [model], sample)
    split = split_task.inference_step(split_gen, [model], sample)
    for a, b in zip(out, split):  # every document reached its 1-token-a-sentence cap
        assert torch.equal(a[0]["tokens"], b[0]["tokens"])
    assert "document 0 ran on (reached its length cap" in caplog.text
    assert f"{len(DOCS)} of {len(DOCS)} documents so far" in caplog.text


def test_run_on_reasons():
    assert run_on.reasons([1, 2, 3], [1, 2, 3], cap=3, score=-1.0, batch_scores=[-1.0])[0].startswith("reached")
    loop = [1, 2, 3, 4] * 10
    assert "repeats" in run_on.reasons(loop, list(range(40)), cap=100, score=-1, batch_scores=[-1])[0]
    assert run_on.reasons(list(range(40)), list(range(40)), cap=100, score=-1, batch_scores=[-1]) == []
    low = run_on.reasons([1, 2], [1, 2], cap=10, score=-3.0, batch_scores=[-3.0, -0.5, -0.6, -0.4])
    assert low and "median" in low[0]


@pytest.mark.parametrize("extra,message", [
    (["--doc-decoding", "aligned"], "--doc-decoding aligned needs --doc-separator"),
    (["--doc-separator", "nosuch"], "--doc-separator nosuch is not a symbol of the source dictionary"),
    (["--doc-separator", "</s>"], "fairseq's end symbol"),
    (["--doc-separator", SEP, "--doc-window", "0"], "--doc-window must be"),
    (["--repetition-penalty", "0"], "--repetition-penalty must be"),
    (["--repetition-penalty", "-1.5"], "--repetition-penalty must be"),
    (["--doc-separator", SEP, "--doc-decoding", "bogus"], "--doc-decoding must be one of"),
    (["--doc-fallback", "split"], "--doc-fallback needs --doc-separator"),
    (["--doc-separator", SEP, "--doc-decoding", "split", "--doc-fallback", "window"], "applies to --doc-decoding whole"),
])
def test_bad_options_are_one_line_naming_the_option(dicts, extra, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        setup(dicts, *extra)


def test_generation_options_that_do_not_fit_a_mode_are_refused(dicts):
    task, model = setup(dicts, "--doc-separator", SEP, "--doc-decoding", "window")
    with pytest.raises(ValueError, match="--prefix-size works with --doc-decoding whole or aligned"):
        task.build_generator([model], GenerationConfig(beam=2, prefix_size=1))
    with pytest.raises(ValueError, match="--print-alignment works with --doc-decoding whole"):
        task.build_generator([model], GenerationConfig(beam=2, print_alignment="hard"))


# ---- through stock fairseq-generate and fairseq-interactive --------------------------------------


@pytest.fixture(scope="module")
def separator_data(tmp_path_factory):
    """Documents of 1-5 reversal sentences joined by <s> on both sides, a tiny RoPE model on them."""
    import random

    from fairseq_helpers import fairseq_train, preprocess

    root = tmp_path_factory.mktemp("sep")
    rng = random.Random(3)
    words = [f"w{i}" for i in range(12)]
    for split, n in (("train", 300), ("valid", 20), ("test", 12)):
        with open(root / f"{split}.src", "w") as src, open(root / f"{split}.tgt", "w") as tgt:
            for _ in range(n):
                sents = [[rng.choice(words) for _ in range(rng.randint(2, 6))] for _ in range(rng.randint(1, 5))]
                src.write(f" {SEP} ".join(" ".join(s) for s in sents) + "\n")
                tgt.write(f" {SEP} ".join(" ".join(w.upper() for w in reversed(s)) for s in sents) + "\n")
    data = preprocess(root, root / "bin", extra=["--joined-dictionary"])
    fairseq_train(data, root / "model", "transformer_rope", "--share-all-embeddings", updates=30)
    return root, data, root / "model" / "checkpoint_last.pt"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["aligned", "window", "split"])
def test_fairseq_generate_prints_separators_and_counts_hold(separator_data, mode):
    from fairseq_helpers import PLUGIN, hypotheses, run

    root, data, ckpt = separator_data
    out = run("generate", data, "--user-dir", PLUGIN, "--task", "translation_doc", "--path", ckpt,
              "--gen-subset", "test", "--beam", "3", "--nbest", "2", "--doc-separator", SEP,
              "--doc-decoding", mode, "--doc-window", "2", env={"OMP_NUM_THREADS": "1"}).stdout
    sources = [line.rstrip("\n") for line in open(root / "test.src")]
    hyps = hypotheses(out)
    assert len(hyps) == len(sources)
    for i, source in enumerate(sources):
        assert hyps[i][1].count(SEP) == source.count(SEP)
        assert all(part.strip() for part in hyps[i][1].split(SEP))
    printed = {int(line[2:].split("\t")[0]): line.split("\t")[1] for line in out.splitlines() if line.startswith("S-")}
    assert sorted(printed) == list(range(len(sources)))
    assert all(printed[i].count(SEP) == source.count(SEP) for i, source in enumerate(sources))


@pytest.mark.slow
def test_fairseq_interactive_decodes_aligned(separator_data):
    from fairseq_helpers import PLUGIN, run

    root, data, ckpt = separator_data
    lines = [f"w1 w2 {SEP} w3 w4 w5 {SEP} w6", "w7 w8", f"{SEP} w1 {SEP}"]
    out = run("interactive", data, "--user-dir", PLUGIN, "--task", "translation_doc", "--path", ckpt,
              "--beam", "2", "--doc-separator", SEP, "--doc-decoding", "aligned",
              stdin="\n".join(lines) + "\n", env={"OMP_NUM_THREADS": "1"}).stdout
    hyps = [line.split("\t")[2] for line in out.splitlines() if line.startswith("H-")]
    assert [h.count(SEP) for h in hyps] == [2, 0, 0]
