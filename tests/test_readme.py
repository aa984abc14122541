"""The README and docs/: short, linked, and showing what the code does.

- README.md has at most 150 lines (issue 27);
- every relative link in README.md and docs/*.md points to a file of the repository;
- every `specverify ...` command in a code block of README.md and docs/*.md parses with the real argument table
  (and names known problems, drafters and mutants); every option of the table is named in docs/cli.md;
- every `specverify` command of the README runs (exit 0 or 1, never 2), and the output excerpts the README shows
  (a block opening with ``PASS:`` / ``FAIL:``, the ``## Diagnosis`` of a ``--markdown`` report) match what that
  command prints now, numbers aside (``...`` in an excerpt stands for anything).
"""

from __future__ import annotations

import argparse
import re
import shlex
import warnings
from pathlib import Path

import pytest

from specverify.cli import main
from specverify.cli.parser import build_parser, check_names

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_LINES = 150
SUBCOMMANDS = ("sample", "check", "mutants", "accept", "problems", "drafters")
# Pages that a script writes and that are linked before they are committed: a missing one is a warning, not a
# failure (remove an entry once its page is in the repository).
PENDING: dict[str, str] = {}  # page -> the command that writes it, for links to pages not written yet

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```(\w*)\s*$")
_NUM = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def _blocks(path: Path) -> list[tuple[str, int, list[str]]]:
    """The fenced code blocks of a Markdown page: (language, first line's index, lines)."""
    out, lang, start, body = [], None, 0, []
    for i, line in enumerate(path.read_text().splitlines()):
        m = _FENCE.match(line.strip())
        if lang is None and m:
            lang, start, body = m.group(1), i + 1, []
        elif lang is not None and line.strip() == "```":
            out.append((lang, start, body))
            lang = None
        elif lang is not None:
            body.append(line)
    return out


def _commands(lines: list[str]) -> list[list[str]]:
    """The `specverify` command lines of a shell block (continuations joined, comments dropped, `&&` split)."""
    joined, buf = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        joined.append(buf + line)
        buf = ""
    out = []
    for line in joined:
        for part in line.split("&&"):
            argv = shlex.split(part, comments=True)
            if argv and argv[0] == "specverify":
                out.append(argv)
    return out


def _shell_commands(path: Path) -> list[list[str]]:
    return [argv for lang, _, body in _blocks(path) if lang in ("bash", "sh", "shell", "")
            for argv in _commands(body)]


def _placeholder(argv: list[str]) -> bool:
    return any("..." in a or a.startswith("[") or "<" in a for a in argv)


# --- (a) length ---------------------------------------------------------------------------------------------

def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines (at most {MAX_LINES}); move reference material to docs/"


# --- (b) links ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_files(page):
    broken = []
    for target in _LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = (page.parent / target.split("#")[0]).resolve()
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else None
        if rel is not None and path.exists():
            continue
        if rel in PENDING:
            warnings.warn(f"{page.name} links {target}, not written yet: {PENDING[rel]}", stacklevel=1)
            continue
        broken.append(target if rel is not None else f"{target} (outside the repository)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.split("#")[0]).resolve() for t in _LINK.findall(README.read_text())}
    missing = [p.name for p in DOCS if p.resolve() not in linked]
    assert not missing, f"docs pages not linked from README.md: {missing}"


def test_the_readme_links_the_theory_index():
    assert "(theory/README.md)" in README.read_text()


# --- (c) commands parse -------------------------------------------------------------------------------------

def _all_commands() -> list[tuple[str, list[str]]]:
    out = []
    for page in [README, *DOCS]:
        out += [(page.name, argv) for argv in _shell_commands(page) if not _placeholder(argv)]
    return out


def test_the_readme_shows_commands():
    assert len(_shell_commands(README)) >= 4
    assert not [a for a in _shell_commands(README) if _placeholder(a)], "README commands should have no placeholders"


def _id(argv: list[str]) -> str:
    return " ".join(argv[1:4])


@pytest.mark.parametrize("page,argv", _all_commands(), ids=[f"{p}: {_id(a)}" for p, a in _all_commands()])
def test_command_parses(page, argv):
    args = build_parser().parse_args(argv[1:])
    if args.command not in ("problems", "drafters"):
        check_names(args)  # known problem, drafter, mutant


def test_docs_cli_names_every_option():
    text = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(SUBCOMMANDS)
    options = {opt for p in sub.choices.values() for action in p._actions for opt in action.option_strings
               if opt.startswith("--") and opt != "--help"}
    missing = sorted(opt for opt in options if not re.search(re.escape(opt) + r"(?![\w-])", text))
    assert not missing, f"options missing from docs/cli.md: {missing}"


# --- (d) what the README shows is what the code prints -----------------------------------------------------

def _pattern(line: str) -> re.Pattern:
    """A README excerpt line as a regex: any number for each number, any whitespace run for each, ``...`` any."""
    pieces = []
    for part in line.strip().split("..."):
        tokens = re.split(f"({_NUM})", part)
        text = "".join(_NUM if i % 2 else r"\s+".join(re.escape(w) for w in re.split(r"\s+", t))
                       for i, t in enumerate(tokens))
        pieces.append(text)
    return re.compile(r"\s*" + ".*".join(pieces) + r"\s*")


def _matches(excerpt: list[str], output: list[str]) -> list[str]:
    """The excerpt's lines not found, in order, in the output (empty: it matches)."""
    i, missing = 0, []
    for line in excerpt:
        if line.strip() in ("", "..."):
            continue
        pat = _pattern(line)
        j = next((j for j in range(i, len(output)) if pat.fullmatch(output[j])), None)
        if j is None:
            missing.append(line)
        else:
            i = j + 1
    return missing


def _readme_runs():
    """Each README command with the excerpts shown after it (before the next command): (argv, [(kind, lines)])."""
    runs = []
    for lang, _, body in _blocks(README):
        if lang == "text" and body and re.match(r"(PASS|FAIL): ", body[0]):
            runs[-1][1].append(("stdout", body))
        elif lang == "text" and body and body[0].startswith("## Diagnosis"):
            runs[-1][1].append(("markdown", body))
        elif lang in ("bash", "sh", "shell", ""):
            runs += [(argv, []) for argv in _commands(body)]
    return runs


def test_the_readme_shows_a_pass_a_fail_and_a_diagnosis():
    shown = [(excerpt[0], kind) for _, excerpts in _readme_runs() for kind, excerpt in excerpts]
    assert any(first.startswith("PASS: ") for first, _ in shown)
    assert any(first.startswith("FAIL: ") for first, _ in shown)
    assert any(kind == "markdown" for _, kind in shown)
    text = README.read_text()
    assert "  caught by: " in text and "0 pass, 1 exactness rejected, 2" in text


def test_the_printed_formats_are_the_codes():
    """The cheap half of (d): the lines the excerpts open with are printed by specverify/cli/check.py."""
    src = (ROOT / "specverify" / "cli" / "check.py").read_text()
    assert 'print(f"{report.verdict.upper()}: {what} on {where} against the {against}")' in src
    assert 'print(f"  caught by: {\', \'.join(report.caught_by)}")' in src


@pytest.mark.parametrize("argv,excerpts", _readme_runs(), ids=[_id(a) for a, _ in _readme_runs()])
def test_readme_command_runs_and_prints_what_the_readme_shows(argv, excerpts, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # reports land here; examples/ as seen from the repository root
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    code = main(argv[1:])
    out = capsys.readouterr()
    assert code in (0, 1), f"{shlex.join(argv)} exited {code}: {out.err}"
    for kind, excerpt in excerpts:
        first = excerpt[0]
        if kind == "stdout":
            assert code == (0 if first.startswith("PASS") else 1), f"{shlex.join(argv)} exited {code}"
            lines = out.out.splitlines()
        else:
            markdown = build_parser().parse_args(argv[1:]).markdown
            assert markdown is not None, f"the README shows a report of {shlex.join(argv)}, which writes none"
            lines = (tmp_path / markdown).read_text().splitlines()
        missing = _matches(excerpt, lines)
        assert not missing, (f"README excerpt lines not printed by {shlex.join(argv)}: {missing}\n"
                             "what it prints:\n" + "\n".join(lines[:40]))
