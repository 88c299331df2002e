"""Every relative link and #anchor in README.md and docs/*.md resolves, and every docs page is
reachable from the README: a moved heading or a renamed file breaks a newcomer's path through
the docs silently otherwise. Anchors follow GitHub's heading slugs. No fairseq, no torch."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fenced = None
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            if fenced is None:
                fenced = fence.group(1)
            elif fence.group(1) == fenced:
                fenced = None
            continue
        if fenced is None:
            yield number, line


def slug(heading):
    """GitHub's anchor for a heading's text: inline markup reduced to its text, lower case,
    everything but letters, digits, '_', '-' and spaces removed, each space a '-'."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path):
    """The anchors of a Markdown file's headings, duplicates numbered as GitHub numbers them."""
    seen, found = {}, set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path):
    """(line number, target) of every inline link and image outside code."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)):
            yield number, match.group(1)


def broken(path, root=ROOT):
    """What in ``path`` does not resolve: '<file>:<line>: <target>: <why>' per broken link."""
    problems, root = [], root.resolve()
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # https:, mailto: ...
        name, _, anchor = target.partition("#")
        dest = (path.parent / name).resolve() if name else path
        where = f"{path.resolve().relative_to(root)}:{number}: {target}"
        if root not in dest.parents and dest != root:
            problems.append(f"{where}: leaves the repository")
        elif not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor:
            if dest.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{where}: no heading with that anchor in {dest.relative_to(root)}")
    return problems


def pages(root=ROOT):
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def test_every_link_and_anchor_resolves():
    problems = [p for page in pages() for p in broken(page)]
    assert not problems, "\n".join(problems)


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for _, target in links(page):
            name = target.partition("#")[0]
            dest = (page.parent / name).resolve() if name else page
            if dest.suffix == ".md" and dest.parent == ROOT / "docs" and dest.exists():
                todo.append(dest)
    missing = [p.name for p in pages()[1:] if p not in reached]
    assert not missing, f"docs pages no link from the README leads to: {missing}"


@pytest.mark.parametrize("heading, expected", [
    ("Checkpoints and torch ≥ 2.6", "checkpoints-and-torch--26"),
    ("Decoding documents: `--task translation_doc`", "decoding-documents---task-translation_doc"),
    ("Length generalization: does the switch induce long-context ability? (issue 7)",
     "length-generalization-does-the-switch-induce-long-context-ability-issue-7"),
    ("The authors' models: [fork](x.md) and **Hugging Face**", "the-authors-models-fork-and-hugging-face"),
    ("Fine-tuning regimes: full, LoRA, minLoRA", "fine-tuning-regimes-full-lora-minlora"),
])
def test_slugs_are_githubs(heading, expected):
    assert slug(heading) == expected


def test_the_checker_finds_what_is_broken(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Page A\n\n## Same\n\n## Same\n\n```bash\n# not a heading\n```\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top\n\n"
        "[ok](docs/a.md#page-a) [dup](docs/a.md#same-1) [self](#top) [web](https://example.org/x)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#nope) [code block](docs/a.md#not-a-heading)\n"
        "[third](docs/a.md#same-2) [out](../outside.md) `[in code](docs/none.md)`\n"
        "```\n[fenced](docs/none.md)\n```\n")
    (tmp_path.parent / "outside.md").write_text("# x\n")
    problems = broken(readme, root=tmp_path)
    assert [p.split(": ", 2)[1:] for p in problems] == [
        ["docs/b.md", "no such file"],
        ["docs/a.md#nope", "no heading with that anchor in docs/a.md"],
        ["docs/a.md#not-a-heading", "no heading with that anchor in docs/a.md"],
        ["docs/a.md#same-2", "no heading with that anchor in docs/a.md"],
        ["../outside.md", "leaves the repository"],
    ]
