"""Where each key and value sits in a TOML document, so errors can say ``file:line:col``.

tomllib gives values but no positions, and tomlkit keeps no line numbers, so this is a small scanner
over text that tomllib has already accepted. It is best-effort: a position it cannot find falls back
to the nearest enclosing table, never to an exception.
"""

from __future__ import annotations

import bisect
import contextlib
import tomllib
from dataclasses import dataclass, field

Path = tuple[str | int, ...]
Pos = tuple[int, int]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}\n#")


@dataclass
class Positions:
    """Line/column (1-based) of every key and every value seen, by key path."""

    keys: dict[Path, Pos] = field(default_factory=dict)
    values: dict[Path, Pos] = field(default_factory=dict)

    def of_key(self, path: Path) -> Pos | None:
        return self._nearest(self.keys, path) or self._nearest(self.values, path)

    def of_value(self, path: Path) -> Pos | None:
        return self._nearest(self.values, path) or self._nearest(self.keys, path)

    @staticmethod
    def _nearest(table: dict[Path, Pos], path: Path) -> Pos | None:
        for end in range(len(path), -1, -1):
            if path[:end] in table:
                return table[path[:end]]
        return None


def locate(text: str) -> Positions:
    """Scan ``text`` (valid TOML) and return the positions of its keys and values."""
    scanner = _Scanner(text)
    # keep what was found so far: positions are a courtesy, never a failure
    with contextlib.suppress(IndexError, ValueError, tomllib.TOMLDecodeError):
        scanner.document()
    return scanner.found


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.found = Positions()
        self.arrays: dict[Path, int] = {}
        self._starts = [0] + [n + 1 for n, ch in enumerate(text) if ch == "\n"]

    def pos(self, index: int) -> Pos:
        line = bisect.bisect_right(self._starts, index)
        return line, index - self._starts[line - 1] + 1

    def document(self) -> None:
        table: Path = ()
        while True:
            self.skip(newlines=True)
            if self.i >= len(self.s):
                return
            if self.s.startswith("[[", self.i):
                table = self.header(array=True)
            elif self.s[self.i] == "[":
                table = self.header(array=False)
            else:
                self.key_value(table)

    def header(self, array: bool) -> Path:
        start = self.i
        self.i += 2 if array else 1
        parts = [name for name, _ in self.dotted_key()]
        self.i += 2 if array else 1
        path: Path = ()
        for part in parts[:-1] if array else parts:
            path = self.resolve((*path, part))
        if array:
            key = (*path, parts[-1])
            self.arrays[key] = self.arrays.get(key, 0) + 1
            self.found.keys.setdefault(key, self.pos(start))
            path = (*key, self.arrays[key] - 1)
        self.found.keys[path] = self.found.values[path] = self.pos(start)
        return path

    def resolve(self, path: Path) -> Path:
        return (*path, self.arrays[path] - 1) if path in self.arrays else path

    def key_value(self, table: Path) -> None:
        path = table
        for name, at in self.dotted_key():
            path = (*path, name)
            self.found.keys.setdefault(path, self.pos(at))
        self.skip()
        self.i += 1  # '='
        self.skip()
        self.value(path)

    def dotted_key(self) -> list[tuple[str, int]]:
        parts: list[tuple[str, int]] = []
        while True:
            self.skip()
            at = self.i
            parts.append((self.simple_key(), at))
            self.skip()
            if self.i < len(self.s) and self.s[self.i] == ".":
                self.i += 1
                continue
            return parts

    def simple_key(self) -> str:
        if self.s[self.i] in "\"'":
            start = self.i
            self.string()
            return str(tomllib.loads("k = " + self.s[start:self.i])["k"])
        start = self.i
        while self.i < len(self.s) and self.s[self.i] in _BARE:
            self.i += 1
        if start == self.i:
            raise ValueError("no key")
        return self.s[start:self.i]

    def value(self, path: Path) -> None:
        self.found.values[path] = self.pos(self.i)
        ch = self.s[self.i]
        if ch in "\"'":
            self.string()
        elif ch == "[":
            self.array(path)
        elif ch == "{":
            self.inline_table(path)
        else:
            while self.i < len(self.s) and self.s[self.i] not in _SCALAR_END:
                self.i += 1

    def array(self, path: Path) -> None:
        self.i += 1
        index = 0
        while True:
            self.skip(newlines=True)
            if self.s[self.i] == "]":
                self.i += 1
                return
            self.value((*path, index))
            index += 1
            self.skip(newlines=True)
            if self.s[self.i] == ",":
                self.i += 1

    def inline_table(self, path: Path) -> None:
        self.i += 1
        while True:
            self.skip()
            if self.s[self.i] == "}":
                self.i += 1
                return
            if self.s[self.i] == ",":
                self.i += 1
                continue
            self.key_value(path)

    def string(self) -> None:
        quote = self.s[self.i]
        if self.s.startswith(quote * 3, self.i):
            end = self._find_close(quote * 3, self.i + 3, escapes=quote == '"')
            for _ in range(2):  # up to two quotes may sit right before the closing delimiter
                if self.s.startswith(quote, end + 3):
                    end += 1
            self.i = end + 3
        else:
            self.i = self._find_close(quote, self.i + 1, escapes=quote == '"') + 1

    def _find_close(self, delim: str, i: int, escapes: bool) -> int:
        while not self.s.startswith(delim, i):
            i += 2 if escapes and self.s[i] == "\\" else 1
            if i >= len(self.s):
                raise ValueError("unterminated string")
        return i

    def skip(self, newlines: bool = False) -> None:
        space = " \t\r\n" if newlines else " \t"
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch in space:
                self.i += 1
            elif ch == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            else:
                return
