"""The exception tree: every failure says what failed, where, and what to do. Imports: stdlib.

Every error signalplay defines derives from `SignalplayError` (a test walks the package):

    SignalplayError                       root: one `except` at an edge catches them all
    ├── ConfigError(issues)               settings and RevOps files: every issue, file:line
    ├── SyncError(source, operation, …)   a call to an external system failed
    │   ├── RetriableError(retry_after)   429, 5xx, timeouts: the one retry policy retries it
    │   │   ├── RateLimitedError          the wait is longer than this run may spend
    │   │   └── UnreachableError(address) no connection at all (refused, no such host)
    │   └── FatalError                    other 4xx, schema drift: a retry will not fix it
    │       └── AuthError                 credentials refused after one re-login or refresh
    ├── SkippableRecordError(ref, reason) one record or op: quarantined, the run goes on
    ├── LockedError(holder, waited)       another run of the project holds the run lock
    ├── UnavailableError(setting, addr)   a store, broker, CRM or source cannot be reached
    ├── ExprError, ExprRuntimeError       lang.functions: an invalid expression; one failing
    │                                     on an account's values (both also ValueError)
    ├── CastError                         lang.transforms: a value that does not fit its cast
    ├── SlaError                          lang.calendar: an SLA no working calendar can meet
    ├── FallbackError                     lang.frame: a column the vector path cannot take
    │                                     (internal: the row path takes over)
    ├── DuplicateKeyError                 lang.yamlsrc: a key twice in one YAML mapping
    ├── AliasBombError                    lang.yamlsrc: aliases that expand past the limit
    ├── BudgetExhaustedError              connectors._ratelimit: the shared budget is spent
    ├── AnswerError                       connectors._http: a non-2xx answer, before it is
    │                                     translated into a SyncError
    └── the stand-ins' own (sandbox: HubSpotError, StripeError, ZendeskError, ApiError,
        RecordError, SoqlError): answered as the vendor's error bodies, never raised to
        a caller of signalplay
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem in a RevOps file or setting, with its position."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        return f"{text} (hint: {self.hint})" if self.hint else text


class SignalplayError(Exception):
    """Root of signalplay's errors."""


class ConfigError(SignalplayError):
    """Settings or RevOps files are invalid; carries every issue found, not only the first."""

    def __init__(self, issues: list[Issue] | tuple[Issue, ...]) -> None:
        super().__init__(tuple(issues))
        self.issues = tuple(issues)

    def __str__(self) -> str:
        count = len(self.issues)
        head = f"{count} configuration error{'s' if count != 1 else ''}"
        return head + ":\n" + "\n".join(f"  {issue}" for issue in self.issues)


class SyncError(SignalplayError):
    """A call to an external system failed."""

    def __init__(
        self,
        source: str,
        operation: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(source, operation, message, status, request_id)
        self.source = source
        self.operation = operation
        self.message = message
        self.status = status
        self.request_id = request_id

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.__dict__))

    def __str__(self) -> str:
        status = f" HTTP {self.status}" if self.status is not None else ""
        req = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.source} {self.operation} failed{status}: {self.message}{req}"


def _rebuild(cls: type[SyncError], state: dict[str, object]) -> SyncError:
    error = cls.__new__(cls)
    Exception.__init__(error, *(state.get(k) for k in ("source", "operation", "message")))
    error.__dict__.update(state)
    return error


class RetriableError(SyncError):
    """A transient failure (429, 5xx, timeout); `retry_after` is the server's hint in seconds."""

    def __init__(
        self,
        source: str,
        operation: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(source, operation, message, status=status, request_id=request_id)
        self.retry_after = retry_after


class UnreachableError(RetriableError):
    """No connection could be made to `address` (refused, no such host, TLS failed to start)."""

    def __init__(self, source: str, operation: str, address: str, reason: str) -> None:
        super().__init__(source, operation, f"cannot connect to {address} ({reason})")
        self.address = address
        self.reason = reason


class RateLimitedError(RetriableError):
    """The vendor's rate limit was hit and the wait is longer than this run may spend."""


class FatalError(SyncError):
    """A failure that a retry will not fix (4xx other than 429, schema drift)."""


class AuthError(FatalError):
    """Credentials were refused after one re-login or token refresh."""


class LockedError(SignalplayError):
    """Another run of this project holds the run lock; `holder` names it (run, host, since)."""

    def __init__(self, holder: str, *, waited: float) -> None:
        super().__init__(holder, waited)
        self.holder = holder
        self.waited = waited

    def __str__(self) -> str:
        return (
            f"another run holds this project's run lock: {self.holder}; waited "
            f"{self.waited:g} s (setting lock.wait_seconds). Try again when it ends."
        )


class UnavailableError(SignalplayError):
    """A store, broker, CRM or source that cannot be reached: the setting, address and a hint."""

    def __init__(self, setting: str, address: str, reason: str, hint: str = "") -> None:
        super().__init__(setting, address, reason, hint)
        self.setting = setting
        self.address = address
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        hint = f"; {self.hint}" if self.hint else ""
        return f"{self.setting} ({self.address}) is unavailable: {self.reason}{hint}"


class SkippableRecordError(SignalplayError):
    """One record or op cannot be used; it is quarantined and the run goes on."""

    def __init__(self, record_ref: str, reason: str) -> None:
        super().__init__(record_ref, reason)
        self.record_ref = record_ref
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.record_ref}: {self.reason}"
