"""File names and fixed values of the RotaryIndicTrans layout."""
MODEL_TYPE = "RotaryIndicTrans"
ARCHITECTURE = "RotaryIndicTransForConditionalGeneration"
CONFIG = "config.json"
BIN, BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
SIDES = {"source": "SRC", "target": "TGT"}  # IndicTrans2's language suffixes, as its files name them
PREFIX, LM_HEAD = "model.", "lm_head.weight"
OUTPUT_PROJECTION = "decoder.output_projection.weight"
VERSIONS = ("encoder.version", "decoder.version")  # fairseq's, absent from HF weights
# fairseq's Dictionary puts these first, at these ids; HF configs restate three of them.
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
TOKEN_IDS = {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 2}
ACTIVATIONS = ("gelu", "relu")  # HF's gelu is the exact (erf) one, fairseq's gelu
# Files of a release that only its own code reads; export-hf --like copies them.
CODE_SUFFIXES = (".py",)
SIDE_FILES = ("tokenizer_config.json", "special_tokens_map.json", "generation_config.json")


def dict_json(side):
    return f"dict.{SIDES[side]}.json"


def spm_model(side):
    return f"model.{SIDES[side]}"


def dict_txt(side):
    return f"dict.{SIDES[side]}.txt"
