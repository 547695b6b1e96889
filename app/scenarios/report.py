"""A scenario's report: readable lines, then a checklist of PASS / FAIL / N/A lines.

N/A is for a line that this run could not check (say why); it never stands in for
a PASS. Any FAIL makes the scenario, and ``perpdesk scenario``, exit non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NA = "N/A"


@dataclass(frozen=True, slots=True)
class Check:
    """One checklist line: what is checked, the outcome, and the figures behind it."""

    line: str
    status: Status
    detail: str = ""

    @classmethod
    def of(cls, line: str, ok: bool, detail: str = "") -> Check:
        return cls(line, Status.PASS if ok else Status.FAIL, detail)

    @classmethod
    def na(cls, line: str, why: str) -> Check:
        return cls(line, Status.NA, why)


@dataclass(slots=True)
class Report:
    """What a scenario prints: a title, its findings, its checklist."""

    name: str
    title: str
    lines: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def add(self, line: str = "") -> None:
        self.lines.append(line)

    def check(self, check: Check) -> None:
        self.checks.append(check)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    def render(self) -> str:
        out = [f"== {self.name}: {self.title}", *self.lines, "", "checklist:"]
        for c in self.checks:
            out.append(f"  [{c.status.value:4}] {c.line}" + (f" — {c.detail}" if c.detail else ""))
        counts = {s: sum(1 for c in self.checks if c.status is s) for s in Status}
        out.append(f"result: {'PASS' if self.ok else 'FAIL'} ({counts[Status.PASS]} pass, "
                   f"{counts[Status.FAIL]} fail, {counts[Status.NA]} n/a)")
        return "\n".join(out)
