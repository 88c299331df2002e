"""scripts/check_docs_commands.py's reading of the docs and its substitution table (issue 28).
No command runs here: the script itself runs them (minutes); this checks, in well under a
second, that it reads every block as bash would and that its table still fits the docs."""
import re

import pytest

from scripts import check_docs_commands as check

PAGE = """Intro.

```bash
fairseq-train data-bin/ --arch transformer_rope \\
    --max-update 20000 --save-dir ckpt   # trailing comment
# a comment line
fairseq-relpos make-docs a b --separator ' <s> # not a comment' \\
    [--ids a.ids] [--rope-theta 10000 ...]
```

```python
print("one program")
```
"""


def test_blocks_join_continuations_and_drop_only_bash_comments():
    commands = check.page_commands("x.md", PAGE)
    assert [(c.line, c.lang) for c in commands] == [(4, "bash"), (7, "bash"), (12, "python")]
    assert commands[0].text == "fairseq-train data-bin/ --arch transformer_rope --max-update 20000 --save-dir ckpt"
    assert commands[1].text == ("fairseq-relpos make-docs a b --separator ' <s> # not a comment' "
                                "[--ids a.ids] [--rope-theta 10000 ...]")
    assert commands[2].text == 'print("one program")'
    assert commands[1].optional and not commands[0].optional


def test_optional_parts_are_left_out_then_put_in():
    command = check.Command("docs/switching.md", 1, "convert a b [--max-positions 4096] [--rope-theta 10000 ...]")
    assert check.substitute(command, "without") == "convert a b"
    assert check.substitute(command, "with") == "convert a b --max-positions 4096 --rope-theta 10000"


def test_an_unclosed_fence_or_continuation_is_an_error():
    with pytest.raises(ValueError, match="never closed"):
        check.fenced_blocks("```bash\nls\n")
    with pytest.raises(ValueError, match="continued line"):
        check.page_commands("x.md", "```bash\nls \\\n```\n")


@pytest.fixture(scope="module")
def documented():
    return [c for page in check.PAGES for c in check.page_commands(page, (check.ROOT / page).read_text())]


def test_every_table_entry_still_matches_the_docs(documented):
    assert check.check_table(documented) == []


def test_what_runs_has_no_placeholder_left(documented):
    """Every command run is runnable text: no '...', no [optional] part, no SRC-style
    placeholder other than IndicTrans2's literal SRC/TGT language names."""
    for command in documented:
        if check.skip_reason(command) or command.lang == "python":
            continue
        for form in ("without", "with"):
            text = check.substitute(command, form)
            assert "..." not in text and not re.search(r"\[--", text), (command.page, command.line, text)
            assert not re.search(r"\b(DATA|BASE\.pt|CKPT|OUT)\b", text), (command.page, command.line, text)


def test_every_page_that_runs_a_command_gets_its_stand_ins(documented):
    from scripts import docs_standins

    pages = {c.page for c in documented if not check.skip_reason(c)}
    assert pages <= set(check.PAGE_STANDINS)
    for names in check.PAGE_STANDINS.values():
        assert set(names) <= set(docs_standins.DESCRIBE)
