"""What the httpx connectors share.

A non-2xx answer carried to the error translation, and that translation (the vendor's classifier for
answers, transport failures retriable).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from signalplay.errors import RetriableError, SignalplayError, SyncError, UnreachableError


class AnswerError(SignalplayError):
    """A non-2xx answer, carried to the translation."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def translator(
    source: str, classify: Callable[[httpx.Response, str], SyncError]
) -> Callable[[Exception, str], SyncError | None]:
    """The `translate` for `call_translated`.

    Answers by `classify`, transport failures as retriable, anything else not ours (None).
    """

    def translate(exc: Exception, operation: str) -> SyncError | None:
        if isinstance(exc, AnswerError):
            return classify(exc.response, operation)
        if isinstance(exc, httpx.ConnectError):
            url = exc.request.url if exc._request is not None else None
            where = f"{url.scheme}://{url.netloc.decode()}" if url else "the server"
            return UnreachableError(source, operation, where, connect_reason(exc))
        if isinstance(exc, httpx.TransportError):
            return RetriableError(source, operation, f"connection failed: {type(exc).__name__}")
        return None

    return translate


def _address(exc: httpx.ConnectError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:  # raised without its request
        return "the server"
    return f"{url.scheme}://{url.netloc.decode()}"


def connect_reason(exc: BaseException) -> str:
    """What a connection failure comes down to, in a few words."""
    text = str(exc).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("name or service not known", "no such host"),
        ("nodename nor servname", "no such host"),
        ("temporary failure in name resolution", "no such host"),
        ("certificate", "TLS certificate refused"),
        ("timed out", "connect timed out"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__
