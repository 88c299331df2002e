"""The Hugging Face layout of the authors' RoPE IndicTrans2 releases, both ways.

``prajdabre/rotary-indictrans2-*`` hold ``config.json`` (``model_type`` RotaryIndicTrans), the
weights under fairseq's own parameter names behind a ``model.`` prefix with ``lm_head.weight``
for the output projection, ``dict.SRC.json``/``dict.TGT.json`` (token -> id) and the
SentencePiece models ``model.SRC``/``model.TGT``. :mod:`.importer` turns such a folder into a
fairseq checkpoint and dictionaries, :mod:`.exporter` does the reverse.
"""
