"""Deployment with CTranslate2: export a checkpoint, decode it as fairseq-generate would."""
