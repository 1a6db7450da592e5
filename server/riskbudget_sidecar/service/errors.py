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
MAX_PROBLEM_LINE_LENGTH = 500
"""A refused config's problem, or a changed key, in at most this many characters: enough for a
file path, a key path and what is wrong, never a megabyte-long key echoed back."""


def capped(problems: list[str], max_length: int = MAX_VIOLATION_LENGTH) -> list[str]:
    """The first MAX_VIOLATIONS problems, each clipped to `max_length` characters, then
    "and N more" if there were more."""
    return [_clip(problem, max_length) for problem in problems[:MAX_VIOLATIONS]] + _left_off(len(problems))


def _clip(text: str, max_length: int = MAX_VIOLATION_LENGTH) -> str:
    return text if len(text) <= max_length else text[:max_length - 3] + "..."


def _left_off(count: int) -> list[str]:
    return [f"and {count - MAX_VIOLATIONS} more"] if count > MAX_VIOLATIONS else []


class InvalidInput(RiskBudgetError):
    """Bad input: each violation names the field and what is wrong with it (the first
    MAX_VIOLATIONS of them; the message says how many more there were)."""

    def __init__(self, violations: list[tuple[str, str]]):
        self.violations = [(_clip(name), _clip(problem)) for name, problem in violations[:MAX_VIOLATIONS]]
        super().__init__("; ".join([*(f"{name}: {problem}" for name, problem in self.violations),
                                    *_left_off(len(violations))]))


class NotReady(RiskBudgetError):
    """The sidecar cannot answer yet (no budget) or any more (shutting down)."""


class Unauthenticated(RiskBudgetError):
    """An admin call came without a token."""


class PermissionDenied(RiskBudgetError):
    """An admin call came with a wrong token, or admin calls are disabled."""


class StateUnavailable(RiskBudgetError):
    """The state store cannot record a change durably: the change is refused (fail closed)."""


class ConfigRefused(RiskBudgetError):
    """A new config cannot be used; the old one stays. `errors` names the first problems (see
    `capped`): a file with 200,000 bad items made one alert of 15 MB, past what ListAlerts sends."""

    def __init__(self, errors: list[str]):
        self.errors = capped(errors, MAX_PROBLEM_LINE_LENGTH)
        super().__init__("; ".join(self.errors))


class HoldingsOutsideConfig(Exception):
    """The state holds positions or reservations under a (strategy, symbol) pair the config does
    not have: the sidecar does not start (they would count in the book's total yet under no
    strategy's limits, and could be neither reduced, filled nor set)."""


class ResumeOutOfRange(RiskBudgetError):
    """A stream's resume point is older than the log keeps, or newer than anything in it."""

    def __init__(self, after_sequence: int, oldest_available: int, newest: int,
                 other_log: tuple[str, str] | None = None):
        """`other_log`: (the subscriber's log id, this sidecar's), when they differ."""
        self.oldest_available = oldest_available
        if other_log is not None:
            theirs, ours = other_log
            problem = (f"after_sequence {after_sequence} counts in recommendation log {theirs!r}, and "
                       f"this sidecar's log is {ours!r} (a new or replaced state file, or the memory "
                       "store restarted): the recommendations after it are not kept")
        elif after_sequence > newest:
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


def _too_large(sequence: int, size: int, limit: int) -> str:
    return (f"recommendation {sequence} takes {size:,} bytes, more than the {limit:,} a message may take "
            f"(sidecar.max_message_bytes, and at most the 4 MiB gRPC clients receive by default): raise the "
            f"setting (a restart), or trade fewer strategy and symbol pairs")


class RecommendationTooLarge(RiskBudgetError):
    """The recommendation TriggerRebalance made (and recorded) is larger than any message this
    sidecar may send: found by a tester, the call failed with RESOURCE_EXHAUSTED, which did
    not say that the recommendation was made all the same."""

    def __init__(self, sequence: int, size: int, limit: int):
        super().__init__(f"made and recorded, but {_too_large(sequence, size, limit)}")


class RecommendationTooLargeToStream(StreamEnded):
    """The same on a stream: found by a tester, the stream failed on it at every reconnect, and
    the feed, taking the failure for a passing one, retried forever, silent, every later
    recommendation queued behind it."""

    def __init__(self, sequence: int, size: int, limit: int):
        super().__init__(_too_large(sequence, size, limit), sequence - 1)


class TokensRotated(StreamEnded):
    """A reload rotated the tokens: a stream opened with a token no longer valid must not go on."""

    def __init__(self, resume_after: int):
        super().__init__("the sidecar's tokens were rotated: subscribe again with a valid token", resume_after)
