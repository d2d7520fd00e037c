"""Property-based fuzzing of a live API from its own OpenAPI document (schemathesis).

Every operation gets its share of the cases, half that fit the document and half that
do not (wrong types, odd unicode, huge integers, missing fields), each sent to the
real server and its answer checked: never a 5xx, a status the operation declares, and
a body that matches the schema declared for that status. Then stateful sequences
follow the links between operations. The suite runs it derandomized (the same cases
every run); ``make fuzz`` with a random seed it prints, so a failure replays with the
same seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class FuzzReport:
    api: str
    cases: int = 0
    server_errors: int = 0
    # One line per distinct finding: the operation, the check and what it saw.
    failures: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The figures as `make bench` prints them."""
        return [
            f"fuzz_cases: {self.cases} cases ({self.api})",
            f"fuzz_server_errors: {self.server_errors} ({self.api})",
        ]


class Credentials:
    """The Authorization header to send, made again when a case revoked it: a case may
    log out, revoke the token or delete the site that the fuzzer itself uses."""

    def __init__(self, make: Callable[[], dict[str, str]]) -> None:
        self._make = make
        self.headers = make()

    def renew(self) -> dict[str, str]:
        self.headers = self._make()
        return self.headers


def fuzz_api(
    api: str,
    base_url: str,
    credentials: Credentials,
    cases: int,
    seed: int | None = None,
    skip: Iterable[str] = (),
    only: Iterable[str] = (),
    schema_reader: Credentials | None = None,
    scenarios: int = 0,
) -> FuzzReport:
    """About ``cases`` requests spread evenly over the operations of the API at
    ``base_url``, but those in ``skip`` ("GET /x"), or only those in ``only`` when
    given (to replay one). The document is read with ``schema_reader`` (renewed)
    when the credentials under test may not read it. Then ``scenarios`` stateful
    sequences of calls, their cases counted with the rest.
    """
    report = FuzzReport(api)
    reader = schema_reader.renew() if schema_reader else credentials.headers
    schema = schemathesis.openapi.from_url(f"{base_url}/api/schema/openapi.json", headers=reader)
    skipped, wanted = set(skip), set(only)
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if f"{op.method.upper()} {op.path}" not in skipped
        and (not wanted or f"{op.method.upper()} {op.path}" in wanted)
    ]
    per_mode = math.ceil(cases / len(operations) / len(MODES))
    with requests.Session() as session:  # one keep-alive connection, not one per case
        for operation in operations:
            for mode in MODES:
                _fuzz_operation(
                    report, operation, mode, base_url, credentials, session, per_mode, seed
                )
        if scenarios and not wanted:
            _fuzz_stateful(report, schema, base_url, credentials, session, scenarios)
    return report


def _fuzz_stateful(
    report: FuzzReport,
    schema: Any,
    base_url: str,
    credentials: Credentials,
    session: requests.Session,
    scenarios: int,
) -> None:
    """Sequences of calls along the links schemathesis infers between operations (a
    name one answer gives, the next one uses), so that cases reach objects that exist."""

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def call(self, case: Any, **kwargs: Any) -> Any:
            return _call_and_check(report, case, base_url, credentials, session)

        def validate_response(self, *args: Any, **kwargs: Any) -> None:
            pass  # _call_and_check did, and recorded rather than raised

    Machine.run(
        settings=settings(
            max_examples=scenarios,
            stateful_step_count=10,
            # Always the same sequences: a seed does not reach a state machine's run.
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
    )


def _call_and_check(
    report: FuzzReport,
    case: Any,
    base_url: str,
    credentials: Credentials,
    session: requests.Session,
) -> Any:
    """Send one case and record what the checks find; the response."""
    report.cases += 1
    _drop_framing(case)
    headers = credentials.headers
    response = case.call(base_url=base_url, session=session, headers=headers, timeout=60)
    sent = response.request.headers.get("Authorization")
    if response.status_code == 401 and sent == headers.get("Authorization"):
        # An earlier case logged out or revoked this credential: renew and resend.
        # (A case that left it out, as a negative case may, is answered 401 rightly.)
        headers = credentials.renew()
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=60)
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as group:
        label = f"{case.operation.method.upper()} {case.operation.path}"
        for failure in group.exceptions:
            if failure.title == "Server error":
                report.server_errors += 1
            key = f"{label}: {failure.title}"
            found = f"{key}\n{failure.message}\n{case.as_curl_command()}"
            report.failures.setdefault(key, found)
    return response


# How a request is framed is the HTTP server's, not the API's: a generated header that
# happens to be named Content-Length (with a value that is not a number) is answered
# 400 by the server before any route sees the request, as it should be, and no
# operation's document could list that.
_FRAMING_HEADERS = {"content-length", "transfer-encoding", "host", "connection", "expect", "te"}


def _drop_framing(case: Any) -> None:
    if case.headers:
        for name in [n for n in case.headers if n.lower() in _FRAMING_HEADERS]:
            del case.headers[name]


def _fuzz_operation(
    report: FuzzReport,
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    credentials: Credentials,
    session: requests.Session,
    examples: int,
    seed: int | None,
) -> None:
    @settings(
        max_examples=examples,
        derandomize=seed is None,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        _call_and_check(report, case, base_url, credentials, session)

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    run()
