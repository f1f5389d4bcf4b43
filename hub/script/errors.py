"""Errors of the script language: problems located at file:line:column, every one at once."""

from __future__ import annotations

from dataclasses import dataclass

from lecis.errors import LabedgeError


@dataclass(frozen=True)
class ScriptProblem:
    """One thing wrong in a script, at the exact character (1-based line and column)."""

    file: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        if self.column is None:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ScriptError(LabedgeError):
    """A script that cannot run; `problems` lists every one found, in file order."""

    def __init__(self, problems: list[ScriptProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ExpressionError(ScriptError):
    """An expression that does not parse or cannot be right (wrong type, unknown function)."""

    def __init__(self, problem: ScriptProblem) -> None:
        super().__init__([problem])
        self.problem = problem


class EvaluationError(LabedgeError):
    """An expression that has no value now: a stale or missing reading, a division by zero, a wrong type."""
