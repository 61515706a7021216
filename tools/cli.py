"""What the command-line tools share: a parser that reports a bad argument in one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")
Number = TypeVar("Number", int, float)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are ``PROG: error: MESSAGE`` (exit status 2), without the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(kind: type[Number], lo: float, what: str | None = None) -> Callable[[str], Number]:
    """An argparse type: ``kind(text)``, at least ``lo`` (``what`` says so in the error; default "at least LO")."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{text!r} must be {what or f'at least {lo:g}'}")
        return value

    return parse


def run_or_exit(prog: str, fn: Callable[[], T], *errors: type[BaseException]) -> T:
    """``fn()``; one of ``errors`` exits with ``PROG: error: MESSAGE`` (status 1), Ctrl-C with status 130."""
    try:
        return fn()
    except errors as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
