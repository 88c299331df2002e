"""Reading and writing the weights of a Hugging Face folder: ``pytorch_model.bin`` (read with
``weights_only``), ``model.safetensors`` (the optional ``hf`` extra), or either sharded behind
its ``.index.json``.

Every weight file must lie inside the folder once symlinks are resolved, checked before it is
opened: an index naming ``../elsewhere.bin`` or ``/etc/passwd``, or a link out of the folder, is
refused. The one exception is Hugging Face's own cache, whose snapshot folders
(``models--ORG--NAME/snapshots/REVISION``) hold links into the same model's ``blobs`` folder."""
import os

import torch

from . import json_file, layout


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
            return [confined(folder, single)]
        if os.path.isfile(os.path.join(folder, index)):
            index = os.path.join(folder, index)
            return [confined(folder, name, index) for name in _shards(index)]
    raise FileNotFoundError(f"{folder} has no weights: expected {layout.SAFETENSORS}, {layout.BIN} or "
                            "their .index.json")


def _shards(index):
    """The shard file names an ``.index.json`` maps its weights to."""
    content = json_file.read(index)
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict):
        raise ValueError(f"{index} has no weight_map (a JSON object of weight name -> shard file)")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard:
            raise ValueError(f"{index} weight_map maps {name[:80]!r} to {repr(shard)[:80]}, not a shard file name")
    return sorted(set(weight_map.values()))


def _hub_blobs(folder):
    """The ``blobs`` folder of Hugging Face's cache beside a snapshot folder, else None."""
    snapshots = os.path.dirname(folder)
    if os.path.basename(snapshots) == "snapshots" and os.path.basename(os.path.dirname(snapshots)).startswith("models--"):
        return os.path.join(os.path.dirname(snapshots), "blobs")
    return None


def confined(folder, name, named_by=None):
    """The path of the weight file ``name`` of ``folder`` if it resolves (symlinks included) to a
    place inside ``folder`` (or, for a snapshot of Hugging Face's cache, inside that model's
    blobs), else a ValueError naming it and ``named_by`` (the index that names it)."""
    path = os.path.join(folder, name)
    real_folder = os.path.realpath(folder)
    allowed = [real_folder] + [os.path.realpath(b) for b in [_hub_blobs(real_folder)] if b]
    real = os.path.realpath(path)
    if not any(os.path.commonpath([real, root]) == root for root in allowed):
        what = f"{named_by} names the weight file {name!r}, which" if named_by else path
        raise ValueError(f"{what} resolves to {real}, outside {folder}: weights are read only from inside "
                         "the model's folder")
    return path


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
        if os.path.getsize(path) == 0:
            raise ValueError(f"{path} is empty (0 bytes): a download cut short?")
        try:
            if path.endswith(".safetensors"):
                part = _safetensors().load_file(path)
            else:  # weights_only refuses anything but tensors and containers
                part = torch.load(path, map_location="cpu", weights_only=True)
        except MissingExtraError:
            raise
        except Exception as err:
            said = (str(err).splitlines() or [""])[0][:200]
            raise ValueError(f"{path} is not a plain state dict of tensors ({type(err).__name__}: {said})") from None
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
