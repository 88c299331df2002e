"""Reading the JSON files of a Hugging Face folder (config.json, the index, the vocabularies),
so that a file that is not JSON is refused naming it, as a one-line ValueError."""
import json


def read(path):
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not JSON ({err})") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
