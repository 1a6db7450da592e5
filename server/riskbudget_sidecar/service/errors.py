"""Domain errors. They carry no status codes: rpc/errors.py maps them in one table."""

from __future__ import annotations


class RiskBudgetError(Exception):
    """Base of the errors the sidecar reports to its callers."""


class InvalidInput(RiskBudgetError):
    """Bad input: each violation names the field and what is wrong with it."""

    def __init__(self, violations: list[tuple[str, str]]):
        self.violations = violations
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in violations))


class NotReady(RiskBudgetError):
    """The sidecar cannot answer yet (no budget) or any more (shutting down)."""


class Unauthenticated(RiskBudgetError):
    """An admin call came without a token."""


class PermissionDenied(RiskBudgetError):
    """An admin call came with a wrong token, or admin calls are disabled."""
