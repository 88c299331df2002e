"""The corpora of the experiments: a generated toy language family and real Bible translations."""
