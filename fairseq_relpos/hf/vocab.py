"""The token -> id JSON of the releases, and fairseq's ``dict.*.txt``, the same ids both ways.

A fairseq Dictionary holds ``<s> <pad> </s> <unk>`` at ids 0-3 and the lines of ``dict.txt``
from id 4 on, in file order; so the JSON's tokens sorted by id, specials first, are the file.
"""
import json

from fairseq.data import Dictionary

from . import json_file, layout


def tokens_from_json(path, size):
    """The tokens of a token -> id JSON in id order; refuses ids that are not 0 .. size-1 once each,
    specials out of place, or tokens a dict.txt line cannot hold."""
    mapping = json_file.read(path)
    if not isinstance(mapping, dict):
        raise ValueError(f"{path} is not a JSON object of token -> id")
    by_id = {}
    for token, index in mapping.items():
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(f"{path}: token {token!r} has id {index!r}, not an integer")
        if index in by_id:
            raise ValueError(f"{path}: tokens {by_id[index]!r} and {token!r} both have id {index}")
        if not token or "\n" in token or "\r" in token:
            raise ValueError(f"{path}: token {token!r} cannot be a line of fairseq's dict.txt")
        by_id[index] = token
    if sorted(by_id) != list(range(len(by_id))):
        missing = next(i for i in range(len(by_id) + 1) if i not in by_id)
        raise ValueError(f"{path}: ids are not 0 .. {len(by_id) - 1} (no token has id {missing})")
    if len(by_id) != size:
        raise ValueError(f"{path} has {len(by_id)} tokens but the embedding has {size} rows")
    tokens = [by_id[i] for i in range(len(by_id))]
    if tuple(tokens[:4]) != layout.SPECIALS:
        raise ValueError(f"{path}: ids 0-3 are {tokens[:4]}, but fairseq's dictionary has {list(layout.SPECIALS)} there")
    return tokens


def write_dict_txt(tokens, path):
    """fairseq's dict.txt for ``tokens`` (specials first): one ``token count`` line per token
    after the specials; the counts are not in the release, and only order matters to fairseq."""
    with open(path, "w", encoding="utf-8") as f:
        for token in tokens[4:]:
            f.write(f"{token} 1\n")


def json_from_dictionary(dictionary, path):
    """The token -> id JSON of a fairseq Dictionary; refuses a token that appears twice (one
    name cannot map to two ids)."""
    mapping = {}
    for index, token in enumerate(dictionary.symbols):
        if token in mapping:
            raise ValueError(f"the dictionary has {token!r} twice (ids {mapping[token]} and {index}); "
                             "a token -> id JSON cannot hold that")
        mapping[token] = index
    with open(path, "w", encoding="utf-8") as f:
        json.dump(mapping, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return mapping


def load_dictionary(path):
    return Dictionary.load(path)
