"""``import-hf`` and ``export-hf``: the RotaryIndicTrans layout of the authors' releases.

HF-style folders are made here, by export-hf from small models and by hand from their
weights (both weight formats, sharded too); real releases cannot be downloaded in tests.
"""
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import fairseq_helpers as h  # noqa: E402
from fork_fixtures import load_like_generate, scores, source_model  # noqa: E402

from fairseq_relpos.cli import main as cli  # noqa: E402
from fairseq_relpos.models.shape_inheritance import RELATIVE_FIELDS, SHAPE_FIELDS  # noqa: E402

IT2_LIKE = ["--share-decoder-input-output-embed", "--layernorm-embedding", "--encoder-normalize-before",
            "--decoder-normalize-before", "--activation-fn", "gelu", "--max-source-positions", "2048",
            "--max-target-positions", "2048"]
FORMATS = ["bin", pytest.param("safetensors", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("safetensors") is None, reason="the hf extra (safetensors) is not installed"))]


def relpos(*argv):
    return cli.main([str(a) for a in argv])


def spm_files(tmp):
    """Stand-ins for the SentencePiece models: import-hf copies them byte for byte."""
    paths = {}
    for side in ("src", "tgt"):
        paths[side] = Path(tmp) / f"spm.{side}"
        paths[side].write_bytes(os.urandom(64))
    return paths


@pytest.fixture
def exported(tmp_path):
    """(data, task, model, checkpoint, HF folder, spm files) of an IndicTrans2-shaped RoPE model."""
    data, task, model, path = source_model(tmp_path, "transformer_rope", IT2_LIKE)
    spm = spm_files(tmp_path)
    hf = tmp_path / "hf"
    assert relpos("export-hf", path, hf, "--spm-src", spm["src"], "--spm-tgt", spm["tgt"]) == 0
    return data, task, model, path, hf, spm


def model_fields(path):
    args = vars(torch.load(path, weights_only=True)["cfg"]["model"])
    return {k: args.get(k) for k in SHAPE_FIELDS + RELATIVE_FIELDS + ("relative_positions", "arch")}


@pytest.mark.parametrize("fmt", FORMATS)
def test_import_of_export_is_the_model_bit_for_bit(tmp_path, fmt):
    data, task, model, path = source_model(tmp_path, "transformer_rope", IT2_LIKE)
    spm = spm_files(tmp_path)
    hf, back = tmp_path / "hf", tmp_path / "back"
    assert relpos("export-hf", path, hf, "--weights", fmt, "--spm-src", spm["src"], "--spm-tgt", spm["tgt"]) == 0
    assert (hf / ("model.safetensors" if fmt == "safetensors" else "pytorch_model.bin")).is_file()
    config = json.loads((hf / "config.json").read_text())
    assert (config["model_type"], config["rope_args"], config["d_model"]) == ("RotaryIndicTrans", {"theta": 10000.0}, 32)
    assert relpos("import-hf", hf, back) == 0
    assert sorted(os.listdir(back)) == ["checkpoint.pt", "dict.SRC.txt", "dict.TGT.txt", "model.SRC", "model.TGT"]
    source, imported = torch.load(path, weights_only=True)["model"], torch.load(back / "checkpoint.pt", weights_only=True)["model"]
    assert list(imported) == list(source)
    for key, tensor in source.items():
        assert imported[key].dtype == tensor.dtype and torch.equal(imported[key], tensor), key
    assert model_fields(back / "checkpoint.pt") == model_fields(path)
    assert (back / "model.SRC").read_bytes() == spm["src"].read_bytes()
    imported_task, imported_model = load_like_generate(back / "checkpoint.pt", back)
    assert torch.allclose(scores(imported_model, imported_task), scores(model, task), atol=1e-5, rtol=0)
    # ... and export of the import gives back the same folder
    again = tmp_path / "again"
    assert relpos("export-hf", back / "checkpoint.pt", again, "--weights", fmt, "--spm-src", back / "model.SRC",
                  "--spm-tgt", back / "model.TGT") == 0
    for name in os.listdir(hf):
        if name != "config.json":
            assert (again / name).read_bytes() == (hf / name).read_bytes(), name
    assert json.loads((again / "config.json").read_text()) == config


def test_dictionaries_keep_the_releases_ids_in_fairseqs_order(exported, tmp_path):
    from fairseq.data import Dictionary
    _, task, _, _, hf, _ = exported
    back = tmp_path / "back"
    assert relpos("import-hf", hf, back) == 0
    for side, d in (("SRC", task.source_dictionary), ("TGT", task.target_dictionary)):
        ids = json.loads((hf / f"dict.{side}.json").read_text())
        loaded = Dictionary.load(str(back / f"dict.{side}.txt"))
        assert loaded.symbols == d.symbols
        assert all(loaded.index(token) == i for token, i in ids.items())


def test_a_hand_made_release_with_sharded_weights_and_tied_lm_head(exported, tmp_path):
    """The release as HF writes it: lm_head left out when tied, weights in two shards + index."""
    _, task, model, path, hf, _ = exported
    release = tmp_path / "release"
    shutil.copytree(hf, release)
    weights = torch.load(release / "pytorch_model.bin", weights_only=True)
    assert "lm_head.weight" not in weights  # tied: the exporter leaves it out, as HF does
    (release / "pytorch_model.bin").unlink()
    names = sorted(weights)
    shards = {"pytorch_model-00001-of-00002.bin": names[::2], "pytorch_model-00002-of-00002.bin": names[1::2]}
    for shard, keys in shards.items():
        torch.save({k: weights[k] for k in keys}, release / shard)
    index = {"metadata": {}, "weight_map": {k: s for s, keys in shards.items() for k in keys}}
    (release / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    assert relpos("import-hf", release, tmp_path / "out") == 0
    imported_task, imported = load_like_generate(tmp_path / "out" / "checkpoint.pt", tmp_path / "out")
    assert torch.allclose(scores(imported, imported_task), scores(model, task), atol=1e-5, rtol=0)


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


IMPORT_REFUSALS = {
    "wrong model type": (lambda f: _edit_config(f, model_type="IndicTrans"), "model_type 'IndicTrans'"),
    "config of another size (layers)": (lambda f: _edit_config(f, encoder_layers=18), "encoder_layers 18 but the weights have 2"),
    "config of another size (d_model)": (lambda f: _edit_config(f, d_model=512), "d_model 512 but the weights have 32"),
    "config of another size (ffn)": (lambda f: _edit_config(f, decoder_ffn_dim=2048), "decoder_ffn_dim 2048 but the weights have 64"),
    "config untied but no lm_head": (lambda f: _edit_config(f, share_decoder_input_output_embed=False),
                                     "share_decoder_input_output_embed False but the weights have True"),
    "unknown rope_args key": (lambda f: _edit_config(f, rope_args={"theta": 10000, "kind": "ntk"}), "'kind'"),
    "other token ids": (lambda f: _edit_config(f, pad_token_id=0), "pad_token_id 0"),
    "missing heads": (lambda f: _edit_config(f, encoder_attention_heads=None) or _drop_key(f, "encoder_attention_heads"),
                      "encoder_attention_heads"),
    "missing dict.TGT.json": (lambda f: (f / "dict.TGT.json").unlink(), "dict.TGT.json"),
    "missing model.SRC": (lambda f: (f / "model.SRC").unlink(), "model.SRC"),
    "missing weights": (lambda f: (f / "pytorch_model.bin").unlink(), "has no weights"),
    "vocabulary of another size": (lambda f: _drop_token(f, "dict.SRC.json"), "tokens but the embedding has"),
    "a weight outside model.": (lambda f: _add_weight(f, "encoder.extra", torch.zeros(1)), "'encoder.extra'"),
    "theta of 401 digits": (lambda f: _edit_config(f, rope_args={"theta": 10 ** 400}),
                            "config.json rope_args theta must be a finite number"),
    "no heads": (lambda f: _edit_config(f, encoder_attention_heads=0),
                 "config.json encoder_attention_heads must be a positive integer, got 0"),
    "heads as text": (lambda f: _edit_config(f, decoder_attention_heads="2"),
                      "config.json decoder_attention_heads must be a positive integer, got '2'"),
    "config.json not JSON": (lambda f: (f / "config.json").write_text("{"), "config.json is not JSON"),
    "dict.SRC.json not JSON": (lambda f: (f / "dict.SRC.json").write_text('{"<s>": 0,'), "dict.SRC.json is not JSON"),
    "index not JSON": (lambda f: _shard(f, None), "pytorch_model.bin.index.json is not JSON"),
    "index a JSON list": (lambda f: _shard(f, ["pytorch_model-1.bin"]), "index.json has no weight_map"),
    "index naming numbers": (lambda f: _shard(f, lambda name: 3), "to 3, not a shard file name"),
    "index naming lists": (lambda f: _shard(f, lambda name: ["pytorch_model-1.bin"]),
                           "to ['pytorch_model-1.bin'], not a shard file name"),
    "empty weights (a cut download)": (lambda f: (f / "pytorch_model.bin").write_bytes(b""),
                                       "pytorch_model.bin is empty (0 bytes)"),
    "weights cut short": (lambda f: _truncate(f / "pytorch_model.bin"), "pytorch_model.bin is not a plain state dict"),
    "heads of one dimension": (lambda f: _edit_config(f, encoder_attention_heads=32),
                               "config.json encoder_attention_heads 32 gives heads of 1 dimensions"),
    "scale_embedding as text": (lambda f: _edit_config(f, scale_embedding="no"),
                                "config.json scale_embedding must be true or false, got 'no'"),
    "dropout of 5": (lambda f: _edit_config(f, dropout=5.0), "config.json dropout must be a probability in [0, 1), got 5.0"),
    "dropout as text": (lambda f: _edit_config(f, attention_dropout="0.1"), "config.json attention_dropout must be"),
    "max positions as text": (lambda f: _edit_config(f, max_source_positions="2048"),
                              "config.json max_source_positions must be a positive integer, got '2048'"),
}


def _outside(folder, how):
    """Weights that lie outside the folder: a sibling folder's file named by the index ("..."),
    an absolute path, a shard that is a link out of the folder, or the single file as such a link."""
    elsewhere = folder.parent / "outside"
    elsewhere.mkdir()
    (folder / "pytorch_model.bin").rename(elsewhere / "weights.bin")
    if how == "single link":
        (folder / "pytorch_model.bin").symlink_to(elsewhere / "weights.bin")
        return
    names = list(torch.load(elsewhere / "weights.bin", weights_only=True))
    target = {"relative": "../outside/weights.bin", "absolute": "/etc/passwd", "shard link": "link.bin"}[how]
    if how == "shard link":
        (folder / "link.bin").symlink_to(elsewhere / "weights.bin")
    index = {"weight_map": {n: target for n in names}}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))


CONFINEMENT_REFUSALS = {
    "index naming ../outside": (lambda f: _outside(f, "relative"), "names the weight file '../outside/weights.bin'"),
    "index naming /etc/passwd": (lambda f: _outside(f, "absolute"), "names the weight file '/etc/passwd'"),
    "shard linked out of the folder": (lambda f: _outside(f, "shard link"), "names the weight file 'link.bin'"),
    "weights linked out of the folder": (lambda f: _outside(f, "single link"), "pytorch_model.bin resolves to"),
}


@pytest.mark.parametrize("case", list(CONFINEMENT_REFUSALS))
def test_weights_outside_the_folder_are_refused_before_they_are_read(exported, tmp_path, capsys, monkeypatch, case):
    hf = exported[4]
    edit, said = CONFINEMENT_REFUSALS[case]
    edit(hf)
    opened = []
    monkeypatch.setattr(torch, "load", lambda path, *a, **k: opened.append(path))
    capsys.readouterr()
    assert relpos("import-hf", hf, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err and "outside" in err, err
    assert opened == [] and not (tmp_path / "out").exists()


def test_a_snapshot_of_hugging_faces_cache_imports(exported, tmp_path):
    """huggingface_hub's cache: snapshots/REV/ holds links into the model's blobs/ folder."""
    _, task, model, _, hf, _ = exported
    root = tmp_path / "hub" / "models--ai4bharat--rotary-it2"
    snapshot = root / "snapshots" / "0123abc"
    (root / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, path in enumerate(sorted(hf.iterdir())):
        blob = root / "blobs" / f"blob{i}"
        shutil.copyfile(path, blob)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob.name))
    assert relpos("import-hf", snapshot, tmp_path / "out") == 0
    imported_task, imported = load_like_generate(tmp_path / "out" / "checkpoint.pt", tmp_path / "out")
    assert torch.allclose(scores(imported, imported_task), scores(model, task), atol=1e-5, rtol=0)


def _shard(folder, weight_map):
    """The weights as one shard ``pytorch_model-1.bin`` behind an index: ``weight_map`` maps each
    name to what the index says (None: the index is not JSON; a list: the index is that list)."""
    names = list(torch.load(folder / "pytorch_model.bin", weights_only=True))
    (folder / "pytorch_model.bin").rename(folder / "pytorch_model-1.bin")
    if weight_map is None:
        text = "{"
    elif isinstance(weight_map, list):
        text = json.dumps(weight_map)
    else:
        text = json.dumps({"metadata": {}, "weight_map": {n: weight_map(n) for n in names}})
    (folder / "pytorch_model.bin.index.json").write_text(text)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_key(folder, key):
    config = json.loads((folder / "config.json").read_text())
    config.pop(key)
    (folder / "config.json").write_text(json.dumps(config))


def _drop_token(folder, name):
    ids = json.loads((folder / name).read_text())
    ids.pop(max(ids, key=ids.get))
    (folder / name).write_text(json.dumps(ids))


def _add_weight(folder, key, tensor):
    weights = torch.load(folder / "pytorch_model.bin", weights_only=True)
    weights[key] = tensor
    torch.save(weights, folder / "pytorch_model.bin")


@pytest.mark.parametrize("case", list(IMPORT_REFUSALS))
def test_import_refusals_are_one_line_and_write_nothing(exported, tmp_path, capsys, case):
    hf = exported[4]
    edit, said = IMPORT_REFUSALS[case]
    edit(hf)
    capsys.readouterr()
    out = tmp_path / "out"
    assert relpos("import-hf", hf, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_import_never_replaces_its_input_or_an_existing_folder(exported, tmp_path, capsys):
    hf = exported[4]
    before = {p.name: p.read_bytes() for p in hf.iterdir()}
    assert relpos("import-hf", hf, hf, "--force") == 2
    assert relpos("import-hf", hf, hf / "inside", "--force") == 2
    assert relpos("import-hf", hf, hf.parent, "--force") == 2  # OUTDIR holding HF_DIR
    assert "input" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in hf.iterdir()} == before
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep")
    assert relpos("import-hf", hf, existing) == 2
    assert "--force" in capsys.readouterr().err and (existing / "mine.txt").read_text() == "keep"
    assert relpos("import-hf", hf, existing, "--force") == 2  # not an import-hf folder: never replaced
    assert "mine.txt, which this command does not write" in capsys.readouterr().err
    assert (existing / "mine.txt").read_text() == "keep"
    (existing / "mine.txt").unlink()
    assert relpos("import-hf", hf, existing) == 2  # an empty folder exists: it needs --force too
    capsys.readouterr()
    assert relpos("import-hf", hf, existing, "--force") == 0
    first = (existing / "checkpoint.pt").read_bytes()
    assert relpos("import-hf", hf, existing, "--force") == 0  # an earlier import is replaced
    assert (existing / "checkpoint.pt").read_bytes() == first


EXPORT_REFUSALS = {
    "ALiBi": ("transformer_alibi", (), "alibi positions"),
    "sinusoidal": ("transformer", (), "sinusoidal positions"),
    "linear scaling": ("transformer_rope", ("--rope-scaling", "linear", "--rope-scaling-factor", "2"), "--rope-scaling linear"),
    "full rotation": ("transformer_rope", ("--rope-fraction", "1.0"), "--rope-fraction 1.0"),
    "half layout": ("transformer_rope", ("--rope-layout", "half"), "--rope-layout half"),
    "two model dimensions": ("transformer_rope", ("--decoder-embed-dim", "16", "--decoder-attention-heads", "2"),
                             "one d_model"),
}


@pytest.mark.parametrize("case", list(EXPORT_REFUSALS))
def test_export_refuses_what_rotary_indictrans_does_not_compute(tmp_path, capsys, case):
    arch, extra, said = EXPORT_REFUSALS[case]
    _, _, _, path = source_model(tmp_path, arch, extra)
    capsys.readouterr()
    assert relpos("export-hf", path, tmp_path / "hf") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err, err
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize("tied", [True, False])
def test_embedding_sharing_is_written_for_hugging_face_and_round_trips(tmp_path, tied):
    """HF's configs default ``tie_word_embeddings`` to true: an untied model must say false, or
    HF would tie its lm_head to the decoder's embedding on load."""
    extra = [a for a in IT2_LIKE if tied or a != "--share-decoder-input-output-embed"]
    _, task, model, path = source_model(tmp_path, "transformer_rope", extra)
    hf, back = tmp_path / "hf", tmp_path / "back"
    assert relpos("export-hf", path, hf) == 0
    config = json.loads((hf / "config.json").read_text())
    assert config["tie_word_embeddings"] is tied and config["share_decoder_input_output_embed"] is tied
    assert ("lm_head.weight" in torch.load(hf / "pytorch_model.bin", weights_only=True)) is not tied
    (hf / "model.SRC").write_bytes(b"spm")
    (hf / "model.TGT").write_bytes(b"spm")
    assert relpos("import-hf", hf, back) == 0
    imported = torch.load(back / "checkpoint.pt", weights_only=True)
    assert bool(vars(imported["cfg"]["model"]).get("share_decoder_input_output_embed")) is tied
    head, embed = (imported["model"][f"decoder.{k}.weight"] for k in ("output_projection", "embed_tokens"))
    assert torch.equal(head, embed) is tied
    imported_task, imported_model = load_like_generate(back / "checkpoint.pt", back)
    assert torch.allclose(scores(imported_model, imported_task), scores(model, task), atol=1e-5, rtol=0)


def test_export_refuses_a_decoder_input_dimension_of_its_own(tmp_path, capsys):
    """fairseq has no command-line option for it; a checkpoint can still carry one (an edited or
    foreign one), and RotaryIndicTrans's config has no field for it."""
    _, _, _, path = source_model(tmp_path, "transformer_rope")
    state = torch.load(path, weights_only=False)
    state["cfg"]["model"].decoder_input_dim = 16
    torch.save(state, path)
    capsys.readouterr()
    assert relpos("export-hf", path, tmp_path / "hf") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "decoder_input_dim 16" in err and "32" in err, err
    assert not (tmp_path / "hf").exists()


def test_export_infers_the_pair_from_the_data_files_as_fairseq_does(tmp_path, capsys):
    """fairseq-train run without --source-lang/--target-lang (the README's command) infers the
    pair from the binarised files' names and saves none; export-hf infers it from --data's files
    the same way (as ``export`` and fairseq-generate do), and refuses a folder of dictionaries only."""
    data, _, _, path = source_model(tmp_path, "transformer_rope", IT2_LIKE)
    assert relpos("export-hf", path, tmp_path / "named") == 0
    state = torch.load(path, weights_only=False)
    state["cfg"]["task"]["source_lang"] = state["cfg"]["task"]["target_lang"] = None
    torch.save(state, path)
    capsys.readouterr()
    assert relpos("export-hf", path, tmp_path / "refused", "--data", data) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pass --source-lang and --target-lang" in err, err
    for name in ("train.src-tgt.src.bin", "train.src-tgt.src.idx"):  # what fairseq-preprocess names them
        (data / name).write_bytes(b"")
    assert relpos("export-hf", path, tmp_path / "inferred", "--data", data) == 0
    for name in ("dict.SRC.json", "dict.TGT.json"):
        assert (tmp_path / "inferred" / name).read_text() == (tmp_path / "named" / name).read_text()


def test_export_like_a_release_keeps_its_code_and_config_fields(exported, tmp_path):
    _, _, _, path, hf, _ = exported
    release = tmp_path / "release"
    shutil.copytree(hf, release)
    (release / "modeling_rotary_indictrans.py").write_text("# the release's model code\n")
    (release / "tokenizer_config.json").write_text('{"tokenizer_class": "IndicTransTokenizer"}\n')
    _edit_config(release, auto_map={"AutoConfig": "configuration_rotary_indictrans.RotaryIndicTransConfig"})
    out = tmp_path / "out"
    assert relpos("export-hf", path, out, "--like", release) == 0
    assert (out / "modeling_rotary_indictrans.py").read_text() == "# the release's model code\n"
    assert (out / "tokenizer_config.json").is_file() and (out / "model.TGT").read_bytes() == (release / "model.TGT").read_bytes()
    assert json.loads((out / "config.json").read_text())["auto_map"]["AutoConfig"].endswith("RotaryIndicTransConfig")


@pytest.mark.slow
def test_fairseq_generate_of_the_import_equals_that_of_the_source(exported, tmp_path):
    """Binarised with the imported dict.*.txt, the imported checkpoint decodes as the source."""
    from test_switch import ONE_THREAD
    data, _, _, path, hf, _ = exported
    back = tmp_path / "back"
    assert relpos("import-hf", hf, back) == 0
    raw = tmp_path / "raw"
    raw.mkdir()
    g = torch.Generator().manual_seed(3)
    for side, lang in (("src", "SRC"), ("tgt", "TGT")):
        lines = [" ".join(f"{side}{int(i)}" for i in torch.randint(0, 40, (int(n),), generator=g))
                 for n in torch.randint(3, 12, (12,), generator=g)]
        for name in (f"test.{side}", f"test.{lang}"):
            (raw / name).write_text("\n".join(lines) + "\n")
    outputs = []
    for src, tgt, dicts, ckpt in (("src", "tgt", data, path), ("SRC", "TGT", back, back / "checkpoint.pt")):
        binned = tmp_path / f"bin-{src}"
        h.run("preprocess", "--source-lang", src, "--target-lang", tgt, "--testpref", raw / "test",
              "--srcdict", Path(dicts) / f"dict.{src}.txt", "--tgtdict", Path(dicts) / f"dict.{tgt}.txt",
              "--destdir", binned, "--workers", 1)
        proc = h.run("generate", binned, "--path", ckpt, "--user-dir", h.PLUGIN, "--gen-subset", "test",
                     "--source-lang", src, "--target-lang", tgt, "--batch-size", 4,
                     "--required-batch-size-multiple", 1, "--beam", 3, "--max-len-b", 15, env=ONE_THREAD)
        outputs.append(sorted(line for line in proc.stdout.splitlines() if line[:2] in ("H-", "P-")))
    assert len(outputs[0]) == 24 and outputs[0] == outputs[1]
