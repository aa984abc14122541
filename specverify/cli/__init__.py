"""The `specverify` command.

Exit codes (:func:`exit_code`, the one map): 0 success (for `check`: exactness not rejected), 1 exactness
rejected, 2 anything else: a bad argument, a broken candidate, too few samples, or an unexpected exception. An
error prints one line ``specverify <command>: error: <what to do>`` (the traceback too with ``--debug``), and
`check`, `mutants` and `accept` still write their --json / --markdown report with ``"verdict": "error"``.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from specverify.cli.commands import COMMANDS
from specverify.cli.common import write, write_partial
from specverify.cli.parser import _ArgumentError, build_parser, check_args, check_names
from specverify.errors import EXIT_CODES, SpecverifyError, exit_code

__all__ = ["EXIT_CODES", "exit_code", "main"]


def _message(e: BaseException) -> str:
    """One line that says what went wrong and what to do."""
    if isinstance(e, SpecverifyError):
        return str(e)
    if isinstance(e, MemoryError):
        return f"out of memory ({e or 'MemoryError'}); use a smaller --dim, --n or --steps"
    return (f"unexpected {type(e).__name__}: {e}; rerun with --debug for the traceback (and report it if the "
            "arguments are valid)")




def _outcome(args) -> str:
    """Run the command; an exception (KeyboardInterrupt aside) becomes one error line, a partial report, "error"."""
    try:
        if args.command in ("problems", "drafters"):
            return COMMANDS[args.command](args)
        check_names(args)
        if args.dim is None:
            from specverify.bridge.registry import default_dim

            args.dim = default_dim(args.problem)
        check_args(args)
        return COMMANDS[args.command](args)
    except Exception as e:  # noqa: BLE001 - the exit-code map: every error is exit 2 with one line
        message = " ".join(_message(e).split())
        if args.command in ("check", "mutants", "accept"):
            write_partial(args, message)
        if args.debug:
            traceback.print_exception(e, file=sys.stderr)
        print(f"specverify {args.command}: error: {message}", file=sys.stderr)
        return "error"


def _unparsed_report(argv: list, e: _ArgumentError) -> None:
    """The --json / --markdown report of a command line that argparse could not read (found by hand)."""
    command = e.prog.removeprefix("specverify").strip()
    if command not in ("check", "mutants", "accept"):
        return
    for flag, i in ((a, i) for i, a in enumerate(argv) if a.startswith(("--json", "--markdown"))):
        name, _, value = flag.partition("=")
        value = value or (argv[i + 1] if i + 1 < len(argv) else "")
        if name not in ("--json", "--markdown") or not value or value.startswith("-"):
            continue
        partial = {"command": command, "argv": list(argv), "verdict": "error", "error": str(e)}
        text = json.dumps(partial, indent=2) + "\n" if name == "--json" else \
            f"# specverify {command}: ERROR\n\n{e}\n\nNo verdict: fix the error above and run again.\n"
        try:
            write(Path(value), text)
        except Exception:  # noqa: BLE001, S110 - the error being reported matters more than its report
            pass


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except _ArgumentError as e:
        print(f"{e.prog}: error: {e}", file=sys.stderr)
        _unparsed_report(argv, e)
        return exit_code("error")
    except SystemExit as e:  # --help printed its text
        return e.code if isinstance(e.code, int) else exit_code("error")
    return exit_code(_outcome(args))
