"""Language tags and document joining shared by ``make-docs`` and the toy corpus.

IndicTrans2 puts two language tags before every source sentence (``eng_Latn hin_Deva ...``);
a document keeps them once, at its start, and its target side has none.
"""
import re

TAG = re.compile(r"^[a-z]{2,8}_[A-Z][a-z]{3}$")  # language code _ script (FLORES-200 style)


def split_tags(line):
    """``'eng_Latn hin_Deva a b'`` -> ``(('eng_Latn', 'hin_Deva'), 'a b')``; ``None`` tags when the
    line does not start with two IndicTrans2 tags."""
    parts = line.split(None, 2)
    if len(parts) >= 2 and TAG.match(parts[0]) and TAG.match(parts[1]):
        return (parts[0], parts[1]), parts[2] if len(parts) == 3 else ""
    return None, line


def join_source(tags, sentences, separator=" "):
    text = separator.join(sentences)
    return " ".join(tags) + (" " + text if text else "") if tags else text


def join_target(sentences, separator=" "):
    return separator.join(sentences)
