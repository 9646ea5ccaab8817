"""The command line every benchmark shares: ``--smoke``, ``--seed``, ``--out`` and full / smoke defaults.

A script declares its sized options with ``default=None``; :func:`parse` fills those left unset
from the script's ``FULL`` (or, with ``--smoke``, ``SMOKE``) dictionary and checks the ranges.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .outputs import RESULTS


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` only for options whose default is not None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def parser(description: str, *, raw: bool = False, epilog: str | None = None) -> argparse.ArgumentParser:
    """An argument parser; ``raw`` keeps the description's line breaks (long module docstrings)."""
    formatter = argparse.RawDescriptionHelpFormatter if raw else DefaultsHelp
    return argparse.ArgumentParser(description=description, formatter_class=formatter, epilog=epilog)


def defaults_epilog(full: Mapping, smoke: Mapping) -> str:
    """``"Defaults (full / --smoke): key=full / smoke; ..."`` for a parser's epilog."""
    return "Defaults (full / --smoke): " + "; ".join(f"{k}={full[k]} / {smoke[k]}" for k in full)


def add_common(p: argparse.ArgumentParser, *, smoke_help: str, seed: int | None = 0,
               seed_help: str = "master seed of every random choice", out_help: str = "output directory") -> None:
    """Add ``--seed`` (unless ``seed`` is None), ``--out`` (default ``benchmarks/results``) and ``--smoke``."""
    if seed is not None:
        p.add_argument("--seed", type=int, default=seed, help=seed_help)
    p.add_argument("--out", type=Path, default=RESULTS, help=out_help)
    p.add_argument("--smoke", action="store_true", help=smoke_help)


def add_sized(p: argparse.ArgumentParser, full: Mapping, smoke: Mapping, options: Iterable[tuple[str, str]]) -> None:
    """Integer options ``(flag, help)`` whose defaults come from ``full`` / ``smoke`` (shown in the help)."""
    for flag, text in options:
        key = flag[2:].replace("-", "_")
        p.add_argument(flag, type=int, help=f"{text}; default {full[key]} (--smoke: {smoke[key]})")


def add_shift(p: argparse.ArgumentParser, default: Sequence[float], what: str) -> None:
    """``--shift LO HI``: the root cause's noise shift in noise sd (checked by :func:`parse`)."""
    p.add_argument("--shift", nargs=2, type=float, default=list(default), metavar=("LO", "HI"), help=what)


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None, full: Mapping, smoke: Mapping, *,
          at_least_one: Iterable[str] = (), convert: Mapping[str, Callable] | None = None) -> argparse.Namespace:
    """Parse, fill unset options from ``full`` / ``smoke`` and check them.

    Parameters
    ----------
    p : argparse.ArgumentParser
        With ``--smoke`` among its options.
    argv : sequence of str or None
        The arguments (None: ``sys.argv``).
    full, smoke : mapping
        Option name (``dest``) -> default of the full and of the smoke run.
    at_least_one : iterable of str
        Options that must be >= 1 (an error names the flag).
    convert : mapping, optional
        Option name -> function applied to a default taken from ``full`` / ``smoke``.

    Returns
    -------
    argparse.Namespace
        With ``shift`` as a tuple when the parser has ``--shift``.
    """
    args = p.parse_args(argv)
    convert = convert or {}
    for key, value in (smoke if args.smoke else full).items():
        if getattr(args, key, None) is None:
            setattr(args, key, convert[key](value) if key in convert else value)
    for key in at_least_one:
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    if getattr(args, "shift", None) is not None:
        if not 0 < args.shift[0] <= args.shift[1]:
            p.error("--shift LO HI needs 0 < LO <= HI")
        args.shift = tuple(args.shift)
    return args
