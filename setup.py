from setuptools import find_packages, setup

setup(
    name="fairseq-relpos",
    version="0.1.0",
    description="Relative positions (RoPE, ALiBi) and LoRA fine-tuning for pre-trained fairseq "
                "translation models, as a fairseq --user-dir plugin",
    packages=find_packages(include=["fairseq_relpos", "fairseq_relpos.*"]),
    python_requires=">=3.9,<3.13",
    install_requires=[
        # fairseq 0.12.2 does not import on Python >= 3.11 (mutable dataclass defaults);
        # ve-fairseq is fairseq's main branch with that fix, as binary wheels (see README).
        # Another fairseq (main from source, as IndicTrans2 installs it): FAIRSEQ_SPEC in
        # scripts/bootstrap.sh installs it and then this package with --no-deps.
        "fairseq==0.12.2; python_version < '3.11'",
        "ve-fairseq==0.12.3; python_version >= '3.11'",
        "torch>=2.1",
        "sentencepiece",
        "sacrebleu>=2.0",
        "loralib",
        "numpy",
    ],
    # ct2: `fairseq-relpos export` to CTranslate2 (encoder rotary attention needs >= 4.6.3; the
    # export calls its fairseq converter's layer helpers, tested with 4.8.5: below 5, whose
    # converter may change them);
    # hf: model.safetensors for import-hf/export-hf (pytorch_model.bin needs nothing more)
    extras_require={"test": ["pytest"], "bench": ["matplotlib"], "ct2": ["ctranslate2>=4.6.3,<5"],
                    "hf": ["safetensors"]},
    entry_points={"console_scripts": ["fairseq-relpos=fairseq_relpos.cli.main:main"]},
)
