"""What is wrong with an Enarx.toml, said so a person can fix it: where, which key, found vs allowed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from enarx_pkg.errors import InputError


@dataclass(frozen=True)
class Problem:
    """One mistake in one file. ``key`` is a path such as ``files[2].port`` ("" for the whole file)."""

    file: str
    line: int | None
    column: int | None
    key: str
    message: str
    found: str | None = None
    expected: str | None = None
    suggestion: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        if self.expected:
            text += f" (expected {self.expected})"
        if self.suggestion:
            text += f"; did you mean '{self.suggestion}'?"
        return text

    def to_dict(self) -> dict[str, object]:
        """JSON-able form for ``validate --json``."""
        return {
            "file": self.file, "line": self.line, "column": self.column, "key": self.key,
            "message": self.message, "found": self.found, "expected": self.expected,
            "suggestion": self.suggestion,
        }


class ManifestError(InputError):
    """An Enarx.toml could not be loaded; :attr:`problems` lists every mistake found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(
            sorted(problems, key=lambda p: (p.line or 0, p.column or 0, p.key, p.message))
        )
        count = len(self.problems)
        first = self.problems[0].file if self.problems else "Enarx.toml"
        super().__init__(f"{first}: {count} problem{'s' if count != 1 else ''}: "
                         + "; ".join(str(p) for p in self.problems[:3]) + (" ..." if count > 3 else ""))

    def diagnostics(self) -> str:
        """Every problem, one per line, as ``file:line:col: key: what (expected ...)``."""
        return "\n".join(str(p) for p in self.problems)

    def to_dict(self) -> dict[str, object]:
        return {"problems": [p.to_dict() for p in self.problems]}
