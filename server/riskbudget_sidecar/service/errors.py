"""Domain errors. They carry no status codes: rpc/errors.py maps them in one table."""

from __future__ import annotations


class RiskBudgetError(Exception):
    """Base of the errors the sidecar reports to its callers."""


MAX_VIOLATIONS = 10
"""A refusal names at most this many problems (the first found), each in at most
MAX_VIOLATION_LENGTH characters. A gRPC status travels in trailing metadata, which clients cap
(8 KB soft, 16 KB hard): an unbounded refusal (a batch of a thousand bad ticks) would reach the
client as RESOURCE_EXHAUSTED naming no field. No single message has more fields than this."""
MAX_VIOLATION_LENGTH = 160


class InvalidInput(RiskBudgetError):
    """Bad input: each violation names the field and what is wrong with it (the first
    MAX_VIOLATIONS of them; the message says how many more there were)."""

    def __init__(self, violations: list[tuple[str, str]]):
        self.violations = [(_clip(name), _clip(problem)) for name, problem in violations[:MAX_VIOLATIONS]]
        message = "; ".join(f"{name}: {problem}" for name, problem in self.violations)
        if len(violations) > MAX_VIOLATIONS:
            message += f"; and {len(violations) - MAX_VIOLATIONS} more"
        super().__init__(message)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VIOLATION_LENGTH else text[:MAX_VIOLATION_LENGTH - 3] + "..."


class NotReady(RiskBudgetError):
    """The sidecar cannot answer yet (no budget) or any more (shutting down)."""


class Unauthenticated(RiskBudgetError):
    """An admin call came without a token."""


class PermissionDenied(RiskBudgetError):
    """An admin call came with a wrong token, or admin calls are disabled."""


class StateUnavailable(RiskBudgetError):
    """The state store cannot record a change durably: the change is refused (fail closed)."""


class ConfigRefused(RiskBudgetError):
    """A new config cannot be used; the old one stays."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


class ResumeOutOfRange(RiskBudgetError):
    """A stream's resume point is older than the log keeps, or newer than anything in it."""

    def __init__(self, after_sequence: int, oldest_available: int, newest: int):
        self.oldest_available = oldest_available
        if after_sequence > newest:
            problem = (f"after_sequence {after_sequence} is ahead of the newest recommendation "
                       f"{newest}: it comes from another sidecar or a lost log")
        else:
            problem = f"recommendations up to {oldest_available - 1} are no longer kept"
        super().__init__(f"{problem}; oldest available is {oldest_available}")


class StreamEnded(RiskBudgetError):
    """A subscriber's stream ends early; `resume_after` is the last sequence it was sent."""

    def __init__(self, message: str, resume_after: int):
        self.resume_after = resume_after
        super().__init__(f"{message}; resume after sequence {resume_after}")


class SubscriberOverflow(StreamEnded):
    def __init__(self, resume_after: int):
        super().__init__("subscriber fell behind by more than its queue holds", resume_after)


class ShuttingDown(StreamEnded):
    def __init__(self, resume_after: int):
        super().__init__("the sidecar is shutting down", resume_after)
