"""Reading and writing the weights of a Hugging Face folder: ``pytorch_model.bin`` (read with
``weights_only``), ``model.safetensors`` (the optional ``hf`` extra), or either sharded behind
its ``.index.json``."""
import json
import os

import torch

from . import layout


class MissingExtraError(ImportError, ValueError):
    pass


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise MissingExtraError("reading or writing model.safetensors needs the safetensors package: "
                                "pip install 'fairseq-relpos[hf]'") from None
    return safetensors.torch


def weight_files(folder):
    """The weight files of ``folder`` in the order to read them; refuses a folder with none."""
    for single, index in ((layout.SAFETENSORS, layout.SAFETENSORS_INDEX), (layout.BIN, layout.BIN_INDEX)):
        if single == layout.SAFETENSORS and not _have_safetensors() and \
                any(os.path.exists(os.path.join(folder, n)) for n in (layout.BIN, layout.BIN_INDEX)):
            continue  # both formats present and safetensors not installed: read the .bin
        if os.path.isfile(os.path.join(folder, single)):
            return [os.path.join(folder, single)]
        if os.path.isfile(os.path.join(folder, index)):
            with open(os.path.join(folder, index), encoding="utf-8") as f:
                weight_map = json.load(f).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ValueError(f"{os.path.join(folder, index)} has no weight_map")
            shards = sorted(set(weight_map.values()))
            return [os.path.join(folder, s) for s in shards]
    raise FileNotFoundError(f"{folder} has no weights: expected {layout.SAFETENSORS}, {layout.BIN} or "
                            "their .index.json")


def _have_safetensors():
    try:
        import safetensors  # noqa: F401
    except ImportError:
        return False
    return True


def read(folder):
    """{name: tensor} from every weight file of ``folder``."""
    weights = {}
    for path in weight_files(folder):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"the weight shard {path} named by the index does not exist")
        if path.endswith(".safetensors"):
            part = _safetensors().load_file(path)
        else:
            try:
                part = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # weights_only refuses anything but tensors and containers
                raise ValueError(f"{path} is not a plain state dict of tensors "
                                 f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
        if not isinstance(part, dict) or not all(isinstance(t, torch.Tensor) for t in part.values()):
            raise ValueError(f"{path} is not a state dict of tensors")
        weights.update(part)
    return weights


def write(weights, folder, fmt):
    """Write ``weights`` as one file of format ``bin`` or ``safetensors`` into ``folder``."""
    if fmt == "safetensors":
        seen, plain = set(), {}
        for name, tensor in weights.items():
            # safetensors stores no two names on one storage (tied or shared embeddings)
            key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
            plain[name] = tensor.clone() if key in seen else tensor.contiguous()
            seen.add(key)
        _safetensors().save_file(plain, os.path.join(folder, layout.SAFETENSORS), metadata={"format": "pt"})
    else:
        torch.save(weights, os.path.join(folder, layout.BIN))
