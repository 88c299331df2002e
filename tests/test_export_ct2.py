"""``fairseq-relpos export``: the CTranslate2 model scores and decodes as the fairseq model does.

Scores: CTranslate2's teacher-forced ``score_batch`` against the fairseq model's own forward
pass (what ``--score-reference`` prints), per token, for every rotary option and the stock
shapes (in-process models with random weights, made peaky so that errors show), and for
trained models. Search: ``fairseq-generate`` (greedy and beam 4) against
``ct2_translate.translate_batch`` on trained tiny models; every different hypothesis must be
a near-tie under the fairseq model.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ctranslate2 = pytest.importorskip(
    "ctranslate2", reason="ctranslate2 is not installed: the export needs the ct2 extra (pip install -e '.[ct2]')")

import fairseq_helpers as h  # noqa: E402
from fairseq_helpers import ONE_THREAD, fairseq_train  # noqa: E402
from model_builders import build, random_batch  # noqa: E402

from fairseq import checkpoint_utils  # noqa: E402
from fairseq_relpos.cli import main as cli  # noqa: E402
from fairseq_relpos.ct2 import export as export_ct2, translate as ct2_translate  # noqa: E402

TOL = 1e-4  # nats per token
NEAR_TIE = 2e-3  # nats: what the <pad> ban ordering alone can move a normalised score
GEN = ["--batch-size", "1", "--required-batch-size-multiple", "1", "--gen-subset", "test",
       "--max-len-a", "1.2", "--max-len-b", "10"]
PRE_NORM = ["--encoder-normalize-before", "--decoder-normalize-before", "--layernorm-embedding",
            "--activation-fn", "gelu"]


def relpos(*argv):
    return cli.main([str(a) for a in argv])


def translator(path):
    return ctranslate2.Translator(str(path), device="cpu", inter_threads=1, intra_threads=1)


def forward_log_probs(model, task, sources, targets):
    """Per-token log-probabilities of ``targets`` (token lists, </s> appended) given
    ``sources``, from the fairseq model's forward pass, one pair at a time."""
    sd, td = task.source_dictionary, task.target_dictionary
    out = []
    with torch.no_grad():
        for src, tgt in zip(sources, targets):
            s = torch.tensor([[sd.index(t) for t in src] + [sd.eos()]])
            t = [td.index(w) for w in tgt] + [td.eos()]
            prev = torch.tensor([[td.eos()] + t[:-1]])
            logits = model(s, torch.tensor([s.size(1)]), prev)[0]
            lp = torch.log_softmax(logits.float(), -1)[0]
            out.append(lp[torch.arange(len(t)), torch.tensor(t)].numpy())
    return out


# ------------------------------------------------------------ in-process, every option

VARIANTS = {
    "rope interleaved, half rotated": ("transformer_rope", []),
    "rope half layout, half rotated": ("transformer_rope", ["--rope-layout", "half"]),
    "rope interleaved, all rotated": ("transformer_rope", ["--rope-fraction", "1.0"]),
    "rope half layout, all rotated": ("transformer_rope", ["--rope-layout", "half", "--rope-fraction", "1.0"]),
    "rope 0.25 rotated, theta 500": ("transformer_rope", ["--rope-fraction", "0.25", "--rope-theta", "500"]),
    "rope ntk x4": ("transformer_rope", ["--rope-scaling", "ntk", "--rope-scaling-factor", "4"]),
    "rope linear x4, half layout": ("transformer_rope", ["--rope-scaling", "linear", "--rope-scaling-factor", "4",
                                                         "--rope-layout", "half"]),
    "rope pre-norm, layernorm_embedding, gelu": ("transformer_rope", PRE_NORM),
    "rope post-norm encoder, pre-norm decoder": ("transformer_rope", ["--decoder-normalize-before"]),
    "stock sinusoidal": ("transformer", []),
    "IndicTrans2 transformer_base18L (2+2 layers)": ("transformer_base18L", ["--activation-fn", "gelu"]),
}


def random_model(dicts, arch, extra):
    """A random model whose weights are scaled up, so that its distributions are peaked and a
    mapping error moves the scores far more than the tolerance (see the control test)."""
    task, model, _ = build(dicts, arch, extra, max_source_positions=2048, max_target_positions=2048)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.mul_(3.0)
    return task, model


def ct2_scores(model_dir, task, src, prev, tgt, **options):
    sd, td = task.source_dictionary, task.target_dictionary
    sources = [[sd[i] for i in row[:-1].tolist()] for row in src]
    targets = [[td[i] for i in row[:-1].tolist()] for row in tgt]
    return [np.array(r.log_probs) for r in translator(model_dir).score_batch(sources, targets, **options)]


def fairseq_scores(model, src, prev, tgt):
    with torch.no_grad():
        logits = model(src, torch.full((src.size(0),), src.size(1)), prev)[0]
    return torch.log_softmax(logits.float(), -1).gather(-1, tgt[..., None])[..., 0].numpy()


def batch(task, src_len, tgt_len):
    src, _, prev = random_batch(task, 3, src_len, tgt_len, seed=1)
    tgt = torch.cat([prev[:, 1:], torch.full((3, 1), task.target_dictionary.eos())], 1)
    return src, prev, tgt


@pytest.mark.parametrize("variant", VARIANTS)
def test_teacher_forced_scores_equal_fairseq_per_token(dicts, tmp_path, variant):
    arch, extra = VARIANTS[variant]
    task, model = random_model(dicts, arch, extra)
    export_ct2.save(export_ct2.model_spec(model, task), tmp_path / "ct2")
    src, prev, tgt = batch(task, 40, 30)
    ours = ct2_scores(tmp_path / "ct2", task, src, prev, tgt)
    ref = fairseq_scores(model, src, prev, tgt)
    assert max(np.abs(ours[i] - ref[i]).max() for i in range(3)) < TOL
    assert ref.std() > 1.0  # peaked enough for the comparison to mean something


def test_long_documents_are_not_cut_and_rotary_holds_past_1024(dicts, tmp_path):
    """1,100 source and 300 target tokens: with max_input_length=0 (the helper's setting)
    CTranslate2 matches fairseq; with its default it cuts the source and does not."""
    task, model = random_model(dicts, "transformer_rope", ["--rope-scaling", "linear", "--rope-scaling-factor", "2"])
    export_ct2.save(export_ct2.model_spec(model, task), tmp_path / "ct2")
    src, prev, tgt = batch(task, 1100, 300)
    ref = fairseq_scores(model, src, prev, tgt)
    whole = ct2_scores(tmp_path / "ct2", task, src, prev, tgt,
                       max_input_length=ct2_translate.decoding_config()["max_input_length"])
    assert max(np.abs(whole[i] - ref[i]).max() for i in range(3)) < TOL
    cut = ct2_scores(tmp_path / "ct2", task, src, prev, tgt)
    assert max(np.abs(cut[i] - ref[i]).max() for i in range(3)) > 100 * TOL


def test_control_a_wrong_rotary_layout_is_caught(dicts, tmp_path):
    """The tolerance separates right from wrong: exporting as if the layout were the other
    one moves the scores by far more than TOL."""
    task, model = random_model(dicts, "transformer_rope", [])
    model.encoder.layers[0].self_attn.rotary.layout = "half"  # shared by the stack's layers
    model.decoder.layers[0].self_attn.rotary.layout = "half"
    export_ct2.save(export_ct2.model_spec(model, task), tmp_path / "wrong")
    model.encoder.layers[0].self_attn.rotary.layout = model.decoder.layers[0].self_attn.rotary.layout = "interleaved"
    src, prev, tgt = batch(task, 40, 30)
    wrong = ct2_scores(tmp_path / "wrong", task, src, prev, tgt)
    ref = fairseq_scores(model, src, prev, tgt)
    assert max(np.abs(wrong[i] - ref[i]).max() for i in range(3)) > 100 * TOL


@pytest.mark.parametrize("arch,extra,why", [
    ("transformer_rope", ["--activation-fn", "tanh"], "activation 'tanh' has no CTranslate2 equivalent"),
    ("transformer_nope", [], "its Transformer always has positions"),
    ("transformer", ["--no-token-positional-embeddings"], "its Transformer always has positions"),
    ("transformer_alibi", [], "has ALiBi in its decoder only"),
])
def test_what_ctranslate2_cannot_express_is_refused(dicts, arch, extra, why):
    task, model = random_model(dicts, arch, extra)
    with pytest.raises(ValueError, match=why):
        export_ct2.model_spec(model, task)


def test_missing_ctranslate2_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    with pytest.raises(RuntimeError, match=r"pip install 'fairseq-relpos\[ct2\]'"):
        export_ct2.require_ctranslate2()


# ------------------------------------------------------------ repetition controls and documents

SEP = "<sep>"


@pytest.fixture(scope="module")
def doc_export(tmp_path_factory):
    """(task, model, export dir) of a peaky random RoPE model whose dictionaries hold IndicTrans2
    tags (source) and a separator symbol (both sides)."""
    from fairseq.data import Dictionary

    root = tmp_path_factory.mktemp("docs")
    for lang, extra in (("src", ["eng_Latn", "hin_Deva", SEP]), ("tgt", [SEP])):
        d = Dictionary()
        for word in [f"{lang}{i}" for i in range(40)] + extra:
            d.add_symbol(word)
        d.save(str(root / f"dict.{lang}.txt"))
    task, model = random_model(root, "transformer_rope", [])
    export_ct2.save(export_ct2.model_spec(model, task), root / "ct2")
    return task, model, root / "ct2"


def fixed_length(length, **repetition):
    """decoding.json for outputs of exactly ``length`` tokens, through a JSON round trip."""
    config = ct2_translate.decoding_config(beam=1, max_len_a=0, max_len_b=length, min_len=length, **repetition)
    return json.loads(json.dumps(config))


def bigram_repeats(tokens):
    return len(tokens) - 1 - len({tuple(tokens[i:i + 2]) for i in range(len(tokens) - 1)})


@pytest.mark.parametrize("beam", [1, 4])
def test_no_repeat_ngram_size_reaches_ctranslate2_and_bans_as_the_plugin_does(doc_export, beam):
    """decoding.json's no_repeat_ngram_size is applied by translate_batch, and CTranslate2's
    bans are the plugin's (RepetitionControls in fairseq's search): greedy, the same outputs, 30
    tokens each, <blank> suppressed (CTranslate2 does not ban fairseq's <pad>; the suppression
    renormalises, which greedy search does not see). Beam searches of this looping model differ
    even without bans, through that renormalisation; there only the bans are checked."""
    from fairseq.sequence_generator import SequenceGenerator

    from fairseq_relpos.generation.repetition import RepetitionControls

    task, model, out = doc_export
    src, _, _ = random_batch(task, 4, 12, 2, seed=3)
    sd, td = task.source_dictionary, task.target_dictionary
    sources = [[sd[i] for i in row[:-1].tolist()] for row in src]

    def fairseq(controls):
        gen = SequenceGenerator([model], td, beam_size=beam, max_len_a=0, max_len_b=30, min_len=30)
        gen.repeat_ngram_blocker = controls
        with torch.no_grad():
            hypos = gen.generate([model], {"net_input": {"src_tokens": src, "src_lengths": torch.full((4,), 12)}})
        return [[td[i] for i in h[0]["tokens"][:-1].tolist()] for h in hypos]

    tr = translator(out)
    no_pad = dict(beam=beam, suppress_sequences=[["<blank>"]])  # this random model would emit it; fairseq cannot
    plain = [t for t, _ in ct2_translate.translate_batch(tr, sources, fixed_length(30), **no_pad)]
    blocked = [t for t, _ in ct2_translate.translate_batch(tr, sources, fixed_length(30, no_repeat_ngram_size=2),
                                                           **no_pad)]
    assert sum(map(bigram_repeats, plain)) > 0 and sum(map(bigram_repeats, blocked)) == 0
    assert all(len(t) == 30 for t in blocked)
    if beam == 1:
        assert plain == fairseq(None)
        assert blocked == fairseq(RepetitionControls(ngram_size=2))


def test_repetition_options_round_trip_and_a_window_is_refused(tmp_path):
    config = ct2_translate.decoding_config(repetition_penalty=1.5, no_repeat_ngram_size=3)
    (tmp_path / ct2_translate.DECODING_FILE).write_text(json.dumps(config))
    loaded = ct2_translate.load_decoding(tmp_path)
    assert loaded == config and loaded["repetition_penalty"] == 1.5 and loaded["no_repeat_ngram_size"] == 3
    with pytest.raises(ValueError, match="CTranslate2: its no_repeat_ngram_size bans repeated n-grams over the "
                                         "whole output and has no window"):
        ct2_translate.decoding_config(no_repeat_ngram_size=3, no_repeat_ngram_window=50)
    with pytest.raises(ValueError, match="--repetition-penalty must be a finite number > 0"):
        ct2_translate.decoding_config(repetition_penalty=0)
    with pytest.raises(ValueError, match="--doc-decoding aligned cannot be done by CTranslate2"):
        ct2_translate.translate_documents(None, [["a"]], config, "aligned", SEP)


def random_documents(task, counts, length=5, seed=0):
    """Tagged source documents of ``counts[i]`` sentences of ``length`` words, joined by SEP."""
    g = torch.Generator().manual_seed(seed)
    words = [f"src{i}" for i in range(40)]
    docs = []
    for n in counts:
        sentences = [[words[i] for i in torch.randint(0, 40, (length,), generator=g).tolist()] for _ in range(n)]
        docs.append(["eng_Latn", "hin_Deva"] + ct2_translate.join_sentences(sentences, SEP))
    return docs


def test_split_translates_every_sentence_alone(doc_export):
    task, _, out = doc_export
    tr = translator(out)
    decoding = ct2_translate.decoding_config(beam=2, max_len_a=1.2, max_len_b=4)
    docs = random_documents(task, [3, 1, 5, 2])
    split = ct2_translate.translate_documents(tr, docs, decoding, "split", SEP, batch_size=4)
    for doc, translated in zip(docs, split):
        tags, sentences = ct2_translate.split_sentences(doc, SEP)
        assert tags == ["eng_Latn", "hin_Deva"] and len(translated) == len(sentences)
        alone = [ct2_translate.translate_batch(tr, [tags + s], decoding)[0][0] for s in sentences]
        assert translated == alone and all(translated)


@pytest.mark.parametrize("separator", [SEP, "</s>"])
@pytest.mark.parametrize("window", [1, 2, 4])
def test_window_gives_every_document_its_number_of_sentences(doc_export, separator, window):
    """An untrained (looping) model, documents of 1 to 7 sentences, one with an empty sentence
    and one starting with a separator: exactly N sentences each, every non-empty source sentence
    translated to at least one token, no separator inside a sentence."""
    task, _, out = doc_export
    tr = translator(out)
    decoding = ct2_translate.decoding_config(beam=2, max_len_a=1.2, max_len_b=4)
    docs = [[separator if t == SEP else t for t in doc] for doc in random_documents(task, [1, 4, 7, 2], seed=1)]
    docs[1][2 + 6:2 + 6] = [separator]  # an empty second sentence: s1 <sep> <sep> s2 ...
    docs[3].insert(2, separator)  # an empty first sentence
    result = ct2_translate.translate_documents(tr, docs, decoding, "window", separator, window=window, batch_size=3)
    for doc, translated in zip(docs, result):
        _, sentences = ct2_translate.split_sentences(doc, separator)
        assert len(translated) == len(sentences) == doc.count(separator) + 1
        assert [bool(t) for t in translated] == [bool(s) for s in sentences]
        assert all(separator not in t and "</s>" not in t for t in translated)
    if window == 1 and separator == "</s>":  # no prefix, ends at </s> alone: each sentence alone
        assert result == ct2_translate.translate_documents(tr, docs, decoding, "split", separator, batch_size=3)


def test_export_needs_none_of_ctranslate2s_private_names(dicts, tmp_path, monkeypatch):
    """Its converter's ``_get_vocab`` and ``_SUPPORTED_ACTIVATIONS`` are private: a version
    without them still exports, and the vocabulary and activation come out the same."""
    from ctranslate2.converters import fairseq as ct2_fairseq
    task, model = random_model(dicts, "transformer_rope", PRE_NORM)
    export_ct2.save(export_ct2.model_spec(model, task), tmp_path / "with")
    for name in ("_get_vocab", "_SUPPORTED_ACTIVATIONS"):
        monkeypatch.delattr(ct2_fairseq, name, raising=False)
    export_ct2.save(export_ct2.model_spec(model, task), tmp_path / "without")
    for name in ("config.json", "source_vocabulary.json", "target_vocabulary.json", "model.bin"):
        assert (tmp_path / "with" / name).read_bytes() == (tmp_path / "without" / name).read_bytes(), name
    assert json.loads((tmp_path / "without" / "config.json").read_text())["unk_token"] == "<unk>"
    vocab = json.loads((tmp_path / "without" / "source_vocabulary.json").read_text())
    assert vocab[:4] == ["<s>", "<blank>", "</s>", "<unk>"] and vocab[4:] == task.source_dictionary.symbols[4:]


@pytest.mark.parametrize("name", ["set_linear", "set_transformer_decoder_layer"])
def test_a_ctranslate2_without_a_helper_the_export_calls_is_named(dicts, monkeypatch, name):
    from ctranslate2.converters import fairseq as ct2_fairseq
    task, model = random_model(dicts, "transformer_rope", [])
    monkeypatch.delattr(ct2_fairseq, name)
    monkeypatch.setattr(ctranslate2, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=rf"ctranslate2 9\.9\.9 has no {name}, .* tested with ctranslate2 4\."):
        export_ct2.model_spec(model, task)


# ------------------------------------------------------------ trained models, real CLIs

def tagged_reversal(root, size):
    raw = h.write_reversal_corpus(root, sizes=(("train", 1500), ("valid", 60), ("test", size)))
    for split in ("train", "valid", "test"):
        p = raw / f"{split}.src"
        p.write_text("".join(f"eng_Latn hin_Deva {line}" for line in p.read_text().splitlines(True)))
    return raw


@pytest.fixture(scope="module")
def rope_model(tmp_path_factory):
    """RoPE (interleaved, half rotated), pre-norm, layernorm_embedding, GELU, separate
    dictionaries, language tags before every source; 200 test sentences."""
    root = tmp_path_factory.mktemp("rope")
    raw = tagged_reversal(root / "raw", 200)
    data = h.preprocess(raw, root / "bin")
    fairseq_train(data, root / "ckpt", "transformer_rope", *PRE_NORM, updates=120)
    return raw, data, root / "ckpt" / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def sinusoidal_model(tmp_path_factory):
    """The stock sinusoidal transformer with a joined dictionary and shared embeddings. After 120
    updates it often repeats a word up to the length cap."""
    root = tmp_path_factory.mktemp("sinusoidal")
    raw = tagged_reversal(root / "raw", 200)
    data = h.preprocess(raw, root / "bin", extra=["--joined-dictionary"])
    fairseq_train(data, root / "ckpt", "transformer", "--share-all-embeddings", updates=120)
    return raw, data, root / "ckpt" / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def lora_model(rope_model, tmp_path_factory):
    """loralib adapters (k_proj, v_proj) fine-tuned on the RoPE model."""
    raw, data, base = rope_model
    root = tmp_path_factory.mktemp("lora")
    fairseq_train(data, root, "transformer_rope", *PRE_NORM, "--task", "translation_lora", "--finetune-from-model",
                  base, "--lr", "0.01", updates=20)
    return raw, data, root / "checkpoint_last.pt"


def lines(path):
    return [line.split() for line in Path(path).read_text().splitlines()]


def export(ckpt, data, out, *extra):
    assert relpos("export", ckpt, out, "--data", data, "--max-len-a", 1.2, "--max-len-b", 10, *extra) == 0
    return out


def generate(data, ckpt, beam):
    """({id: fairseq-generate's hypothesis}, {id: every finished hypothesis it printed, --nbest beam})."""
    out = h.run("generate", data, "--user-dir", h.PLUGIN, "--path", ckpt, "--beam", beam, "--nbest", beam, *GEN,
                env=ONE_THREAD).stdout
    nbest = {}
    for line in out.splitlines():
        if line.startswith("H-"):
            head, _, text = (line.split("\t") + [""])[:3]
            nbest.setdefault(int(head[2:]), []).append(text.split())
    return {i: hyps[0] for i, hyps in nbest.items()}, nbest


def normalised(model, task, sources, hyps):
    return [lp.sum() / len(lp) for lp in forward_log_probs(model, task, sources, hyps)]


def load(ckpt, data):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)], arg_overrides={"data": str(data)})
    return models[0].eval(), task


def check_parity(raw, data, ckpt, out, cap_bound_beams=False):
    """Scores within TOL per token on the references; greedy and beam-4 hypotheses equal to
    fairseq-generate's on >= 99% of the test set, every difference a near-tie or, in beam search, a
    hypothesis that ends at the length cap or one that fairseq's search finished too.

    The last is the two searches' other documented difference: CTranslate2 ends a search when
    its best beam ends; fairseq goes on until it has ``beam`` finished hypotheses and may then
    prefer a longer one with a better length-normalised score. Where CTranslate2's output is one
    of fairseq's own finished hypotheses (``--nbest``) and fairseq's choice scores better, both
    decoders computed the same scores; such inputs are not counted in the 99% (at most 5%).

    ``cap_bound_beams``: for a model that decodes to the length cap, beam-4 inputs where either
    search ends at the cap are left out of the 99% (there fairseq forces </s> into the score
    and CTranslate2 stops without it, so they rank cap-bound beams differently: the documented
    difference); at least 80% of the test set must still count."""
    sources, references = lines(raw / "test.src"), lines(raw / "test.tgt")
    model, task = load(ckpt, data)
    tr = translator(out)
    ours = [np.array(r.log_probs) for r in tr.score_batch(sources, references, max_input_length=0)]
    ref = forward_log_probs(model, task, sources, references)
    assert max(np.abs(a - b).max() for a, b in zip(ours, ref)) < TOL
    decoding = ct2_translate.load_decoding(out)
    for beam in (1, 4):
        fairseq, finished = generate(data, ckpt, beam)
        assert sorted(fairseq) == list(range(len(sources)))
        ct2 = [ct2_translate.translate_batch(tr, [s], decoding, beam=beam)[0][0] for s in sources]
        caps = [ct2_translate.max_length(decoding, [len(s)]) for s in sources]
        at_cap = {i for i in range(len(sources)) if caps[i] in (len(ct2[i]), len(fairseq[i]))}
        counted = list(range(len(sources)))
        if cap_bound_beams and beam > 1:
            counted = [i for i in counted if i not in at_cap]
            assert len(counted) >= 0.8 * len(sources)
        stopped_early = []
        for i in counted:
            if beam > 1 and ct2[i] != fairseq[i] and ct2[i] in finished[i][1:]:
                mine, theirs = normalised(model, task, [sources[i]] * 2, [ct2[i], fairseq[i]])
                assert theirs > mine - NEAR_TIE, (beam, i, ct2[i], fairseq[i], mine, theirs)
                stopped_early.append(i)
        assert len(stopped_early) <= 0.05 * len(counted), (beam, stopped_early)
        counted = [i for i in counted if i not in stopped_early]
        differ = [i for i in counted if ct2[i] != fairseq[i]]
        assert len(differ) <= 0.01 * len(counted), (beam, differ)
        for i in differ:
            if beam > 1 and i in at_cap:
                continue  # the documented difference: fairseq scores a forced </s> at the cap
            mine, theirs = normalised(model, task, [sources[i]] * 2, [ct2[i], fairseq[i]])
            assert abs(mine - theirs) < NEAR_TIE, (beam, i, ct2[i], fairseq[i], mine, theirs)


@pytest.mark.slow
def test_rope_model_decodes_as_fairseq_generate(rope_model, tmp_path):
    raw, data, ckpt = rope_model
    out = export(ckpt, data, tmp_path / "ct2")
    assert sorted(os.listdir(out)) == ["README.md", "config.json", "decoding.json", "model.bin",
                                       "source_vocabulary.json", "target_vocabulary.json"]
    assert ct2_translate.load_decoding(out)["no_repeat_ngram_size"] == 0  # off unless asked for
    controlled = export(ckpt, data, tmp_path / "controlled", "--repetition-penalty", 1.3, "--no-repeat-ngram-size", 3)
    recorded = ct2_translate.load_decoding(controlled)
    assert (recorded["repetition_penalty"], recorded["no_repeat_ngram_size"]) == (1.3, 3)
    assert "repetition_penalty=1.3, no_repeat_ngram_size=3" in (controlled / "README.md").read_text()
    source_vocab = json.loads((out / "source_vocabulary.json").read_text())
    assert source_vocab[:4] == ["<s>", "<blank>", "</s>", "<unk>"] and "eng_Latn" in source_vocab
    # Trained under fairseq 0.12.2 (another training run, same seed), this model runs 4 of 200
    # beam-4 searches into the length cap, where fairseq and CTranslate2 rank differently (the
    # documented difference): those are left out, as for the sinusoidal model.
    check_parity(raw, data, ckpt, out, cap_bound_beams=True)


@pytest.mark.slow
def test_sinusoidal_model_with_shared_embeddings_decodes_as_fairseq_generate(sinusoidal_model, tmp_path):
    raw, data, ckpt = sinusoidal_model
    out = export(ckpt, data, tmp_path / "ct2")
    assert (out / "shared_vocabulary.json").exists()
    check_parity(raw, data, ckpt, out, cap_bound_beams=True)


@pytest.mark.slow
def test_lora_checkpoint_is_merged_then_exported(lora_model, tmp_path):
    """The adapters trained (B != 0), the export equals exporting `merge`'s output byte for
    byte, and it scores and decodes as the adapted fairseq model (rebuilt with its adapters)."""
    raw, data, ckpt = lora_model
    state = torch.load(ckpt, weights_only=True)["model"]
    assert any(k.endswith("lora_B") and v.abs().max() > 0 for k, v in state.items())
    out = export(ckpt, data, tmp_path / "ct2")
    assert relpos("merge", ckpt, tmp_path / "merged.pt") == 0
    merged = export(tmp_path / "merged.pt", data, tmp_path / "ct2-merged")
    assert (out / "model.bin").read_bytes() == (merged / "model.bin").read_bytes()
    check_parity(raw, data, ckpt, out)


@pytest.mark.slow
def test_cap_on_length_gives_fairseqs_words(rope_model, tmp_path):
    """With a cap that binds (max_len 4), greedy CTranslate2 stops where fairseq forces </s>."""
    raw, data, ckpt = rope_model
    out = export(ckpt, data, tmp_path / "ct2")
    decoding = dict(ct2_translate.load_decoding(out), max_len_a=0, max_len_b=4)
    tr = translator(out)
    fairseq = h.hypotheses(h.run("generate", data, "--user-dir", h.PLUGIN, "--path", ckpt, "--beam", 1,
                                 *GEN, "--max-len-a", 0, "--max-len-b", 4, env=ONE_THREAD).stdout)
    sources = lines(raw / "test.src")
    ct2 = [ct2_translate.translate_batch(tr, [s], decoding, beam=1)[0][0] for s in sources]
    assert all(len(t) <= 4 for t in ct2) and sum(len(t) == 4 for t in ct2) > len(sources) // 2
    assert sum(ct2[i] == fairseq[i][1].split() for i in range(len(sources))) >= 0.99 * len(sources)


@pytest.mark.slow
def test_int8_export_translates_like_float32(rope_model, tmp_path):
    """The int8 model is the same model, quantised: under half the bytes and mostly the same
    beam-4 output (a 32-dimensional model quantises coarsely: 85% measured; the benchmark
    measures int8 quality as ChrF++ at realistic sizes)."""
    raw, data, ckpt = rope_model
    f32 = translator(export(ckpt, data, tmp_path / "f32"))
    i8 = translator(export(ckpt, data, tmp_path / "i8", "--quantization", "int8"))
    assert (tmp_path / "i8" / "model.bin").stat().st_size < 0.5 * (tmp_path / "f32" / "model.bin").stat().st_size
    sources = lines(raw / "test.src")
    a = [r.hypotheses[0] for r in f32.translate_batch(sources, beam_size=4)]
    b = [r.hypotheses[0] for r in i8.translate_batch(sources, beam_size=4)]
    assert sum(x == y for x, y in zip(a, b)) >= 0.75 * len(sources)


# ------------------------------------------------------------ refusals write nothing

def refused(capsys, folder, *argv):
    before = sorted(os.listdir(folder))
    assert relpos(*argv) == 2
    assert sorted(os.listdir(folder)) == before  # no OUTDIR, no temporary folder
    return capsys.readouterr().err


@pytest.mark.slow
def test_refusals_write_nothing(rope_model, tmp_path, capsys):
    raw, data, ckpt = rope_model
    work = tmp_path / "work"
    work.mkdir()
    for pe, why in (("alibi", "the encoder's symmetric/asymmetric distance bias has no equivalent"),
                    ("nope", "its Transformer always has positions")):
        converted = tmp_path / f"{pe}.pt"
        assert relpos("convert", "--pe", pe, ckpt, converted) == 0
        assert why in refused(capsys, work, "export", converted, work / "out", "--data", data)
    junk = tmp_path / "junk.pt"
    junk.write_text("hello\n")
    assert "junk.pt is not a fairseq checkpoint" in refused(capsys, work, "export", junk, work / "out")
    assert "no such checkpoint" in refused(capsys, work, "export", tmp_path / "gone.pt", work / "out")
    assert "pass --data DIR" in refused(capsys, work, "export", ckpt, work / "out", "--data", tmp_path / "nodata")
    assert "not a valid quantization" in refused(capsys, work, "export", ckpt, work / "out", "--data", data,
                                                 "--quantization", "int3")
    existing = work / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert "has no window" in refused(capsys, work, "export", ckpt, work / "out", "--data", data,
                                      "--no-repeat-ngram-size", 3, "--no-repeat-ngram-window", 50)
    assert "--repetition-penalty must be a finite number > 0" in refused(capsys, work, "export", ckpt, work / "out",
                                                                         "--data", data, "--repetition-penalty", -1)
    assert "exists; pass --force" in refused(capsys, work, "export", ckpt, existing, "--data", data)
    assert "not a CTranslate2 export" in refused(capsys, work, "export", ckpt, existing, "--data", data, "--force")
    assert (existing / "keep.txt").read_text() == "mine"  # --force replaces an export, never another folder
    (existing / "keep.txt").unlink()
    for _ in ("an empty folder", "an export"):
        assert relpos("export", ckpt, existing, "--data", data, "--force") == 0
    assert sorted(os.listdir(work)) == ["existing"]  # replaced in place, nothing left beside it
    assert "model.bin" in os.listdir(existing)


# ------------------------------------------------------------ the IndicTrans2 example script

@pytest.mark.slow
def test_translate_ct2_example_translates_each_document_whole(it2, tmp_path, capsys):
    """examples/indictrans2/translate_ct2.py on an IndicTrans2-shaped release (separate
    SentencePiece models and dictionaries, tags): one output line per blank-line document,
    pieces removed, and the same words as ct2_translate on the tagged pieces of that document."""
    import sentencepiece as spm

    it2_dir, raw = it2
    ckpt = it2_dir / "model" / "checkpoint_best.pt"
    assert "pass --source-lang and --target-lang" in refused(capsys, tmp_path, "export", ckpt, tmp_path / "ct2",
                                                              "--data", it2_dir / "final_bin")
    out = export(ckpt, it2_dir / "final_bin", tmp_path / "ct2", "--source-lang", "SRC", "--target-lang", "TGT")
    script = Path(__file__).resolve().parents[1] / "examples" / "indictrans2" / "translate_ct2.py"
    text = (raw / "test.eng_Latn").read_text()
    proc = subprocess.run([sys.executable, str(script), "--threads", "1", "--batch-size", "1", str(out), str(it2_dir), "eng_Latn",
                           "hin_Deva"], input=text, capture_output=True, text=True, env=dict(os.environ, **ONE_THREAD))
    assert proc.returncode == 0, proc.stderr[-2000:]
    docs = proc.stdout.rstrip("\n").split("\n\n")
    blocks = [b.split("\n") for b in text.strip("\n").split("\n\n")]
    assert len(docs) == len(blocks) == 3 and all("\n" not in d for d in docs) and "▁" not in proc.stdout
    source = spm.SentencePieceProcessor(model_file=str(it2_dir / "vocab" / "model.SRC"))
    target = spm.SentencePieceProcessor(model_file=str(it2_dir / "vocab" / "model.TGT"))
    first = ["eng_Latn", "hin_Deva", *source.encode(" ".join(blocks[0]), out_type=str)]
    (pieces, _), = ct2_translate.translate_batch(translator(out), [first], ct2_translate.load_decoding(out))
    assert docs[0] == target.decode(pieces)


@pytest.mark.slow
def test_translate_ct2_example_decodes_sentence_by_sentence(it2, tmp_path):
    """--doc-decoding split and window write one line per input line (a blank line between
    documents); split's lines are --sentences' lines (each sentence alone); aligned, a window
    without a separator and a separator the vocabulary lacks are refused with the reason."""
    it2_dir, raw = it2
    out = export(it2_dir / "model" / "checkpoint_best.pt", it2_dir / "final_bin", tmp_path / "ct2",
                 "--source-lang", "SRC", "--target-lang", "TGT")
    script = Path(__file__).resolve().parents[1] / "examples" / "indictrans2" / "translate_ct2.py"
    text = (raw / "test.eng_Latn").read_text()

    def run(*options):
        return subprocess.run([sys.executable, str(script), "--threads", "1", "--batch-size", "1", *options, str(out),
                               str(it2_dir), "eng_Latn", "hin_Deva"], input=text, capture_output=True, text=True,
                              env=dict(os.environ, **ONE_THREAD))

    blocks = [b.split("\n") for b in text.strip("\n").split("\n\n")]
    alone = run("--sentences")
    split = run("--doc-decoding", "split")
    window = run("--doc-decoding", "window", "--doc-separator", "</s>", "--doc-window", "2")
    for proc in (alone, split, window):
        assert proc.returncode == 0, proc.stderr[-2000:]
    for proc in (split, window):
        docs = [d.split("\n") for d in proc.stdout.rstrip("\n").split("\n\n")]
        assert [len(d) for d in docs] == [len(b) for b in blocks] and all(line for d in docs for line in d)
    assert split.stdout.replace("\n\n", "\n") == alone.stdout.replace("\n\n", "\n")
    for options, why in ((["--doc-decoding", "aligned"], "aligned cannot be done by CTranslate2"),
                         (["--doc-decoding", "window"], "--doc-decoding window needs --doc-separator"),
                         (["--doc-decoding", "window", "--doc-separator", "<nosuch>"],
                          "'<nosuch>' is not a symbol of")):
        proc = run(*options)
        assert proc.returncode == 2 and why in proc.stderr, proc.stderr[-2000:]
