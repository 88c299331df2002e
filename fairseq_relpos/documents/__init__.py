"""Documents: the IndicTrans2 language tags and joining consecutive sentences into documents."""
