"""The one table from domain errors to HTTP statuses, and the JSON body of an error.

The admin port's counterpart of rpc/errors.py: bad input is 400 with the same
field violations gRPC puts in its BadRequest detail.
"""

from __future__ import annotations

import re

from aiohttp import web
from google.protobuf import json_format

from ..service.errors import (
    InvalidInput, NotReady, PermissionDenied, RiskBudgetError, StateUnavailable, Unauthenticated,
)

STATUS_FOR_ERROR: dict[type[RiskBudgetError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    PermissionDenied: 403,
    NotReady: 503,
    StateUnavailable: 503,
}


def error_response(error: RiskBudgetError) -> web.Response:
    """`{"error": message, "field_violations": [{"field", "description"}]}` with the table's status."""
    status = next((code for kind, code in STATUS_FOR_ERROR.items() if isinstance(error, kind)), 500)
    violations = error.violations if isinstance(error, InvalidInput) else []
    headers = {"WWW-Authenticate": 'Bearer realm="riskbudget admin"'} if status == 401 else None
    return web.json_response(
        {"error": str(error),
         "field_violations": [{"field": field, "description": problem} for field, problem in violations]},
        status=status, headers=headers)


_FIELD = re.compile(r"Failed to parse (\w+) field: ")
_UNKNOWN_FIELD = re.compile(r'has no field named "(\w+)"')
_LOCATION = re.compile(r"\s+at [\w.\"]+\.*$")


def parse_error_input(error: json_format.ParseError) -> InvalidInput:
    """A body that does not fit the request message, as bad input naming the field.

    json_format reports the path as nested "Failed to parse X field: " prefixes
    (`override.scope`) or an unknown field's name; the innermost text is the problem.
    """
    message = str(error).split("\n", 1)[0]
    path = _FIELD.findall(message)
    unknown = _UNKNOWN_FIELD.search(message)
    if unknown:
        path.append(unknown.group(1))
    problem = _LOCATION.sub("", _FIELD.split(message)[-1])
    return InvalidInput([(".".join(path) or "body", problem.strip() or "cannot be parsed")])
