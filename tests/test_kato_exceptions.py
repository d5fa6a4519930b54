"""Code written against the original KATO's ``kato.exceptions`` runs unchanged: its names import,
take their constructor arguments, and catch the errors this package raises."""

from __future__ import annotations

import asyncio

import pytest

import kato
from kato.core import Kato
from kato.exceptions import (
    ConcurrencyError,
    ConflictError,
    DatabaseConnectionError,
    KatoError,
    KatoV2Exception,
    NotFoundError,
    PatternNotFoundError,
    ResourceExhaustedError,
    SessionExpiredError,
    SessionLimitError,
    SessionNotFoundError,
    StoreUnavailableError,
    ValidationError,
    error_class_for,
    from_error_body,
    session_not_found,
    validation_failed,
)
from kato.nodes import MemoryNodes
from kato.sessions import MemorySessionStore
from kato.settings import Settings


def test_kato_v2_exception_takes_katos_arguments() -> None:
    exc = KatoV2Exception("boom", error_code="MY_CODE", context={"k": 1}, recoverable=False)
    assert exc is not None and isinstance(exc, KatoError)
    assert (exc.message, exc.error_code, exc.code) == ("boom", "MY_CODE", "MY_CODE")
    assert exc.context == {"k": 1} == exc.details
    assert exc.recoverable is False and exc.timestamp > 0
    positional = KatoV2Exception("boom", "OTHER", {"a": 2}, True)
    assert (positional.error_code, positional.context, positional.recoverable) == (
        "OTHER",
        {"a": 2},
        True,
    )
    assert KatoV2Exception("plain").error_code == "INTERNAL"


def test_katos_classes_take_their_arguments() -> None:
    conflict = ConcurrencyError("session-1", "observe")
    assert conflict.message == "Concurrent access conflict for session-1 during observe"
    assert conflict.context == {"resource_id": "session-1", "operation": "observe"}
    assert (conflict.code, conflict.status) == ("CONCURRENCY_ERROR", 409)

    database = DatabaseConnectionError("redis", operation="get", context={"host": "h"})
    assert database.message == "Database connection error for redis during get"
    assert database.context["database_type"] == "redis" and database.context["host"] == "h"
    assert (database.database_type, database.status) == ("redis", 503)

    exhausted = ResourceExhaustedError("sessions", 10, 8)
    assert exhausted.context["utilization"] == 1.25 and exhausted.status == 429
    assert exhausted.message == "Resource exhausted: sessions (10/8)"

    expired = SessionExpiredError("session-2", expired_at=12.5)
    assert isinstance(expired, SessionNotFoundError) and expired.status == 404
    assert expired.session_id == "session-2" and expired.context["expired_at"] == 12.5
    assert expired.error_code == "SESSION_EXPIRED"


def test_katos_helpers() -> None:
    missing = session_not_found("session-3", {"why": "deleted"})
    assert isinstance(missing, SessionNotFoundError)
    assert missing.session_id == "session-3" and missing.context == {"why": "deleted"}
    invalid = validation_failed("max_pattern_length", -1, "must be >= 0")
    assert isinstance(invalid, ValidationError) and invalid.status == 422
    assert invalid.message == "Validation failed for field 'max_pattern_length': must be >= 0"
    assert invalid.field_name == "max_pattern_length" and invalid.context["field_value"] == "-1"
    assert invalid.recoverable is True
    assert ValidationError("plain message").message == "plain message"


@pytest.mark.parametrize(
    ("ours", "katos"),
    [
        (ConflictError, ConcurrencyError),
        (StoreUnavailableError, DatabaseConnectionError),
        (SessionLimitError, ResourceExhaustedError),
        (SessionNotFoundError, KatoV2Exception),
        (PatternNotFoundError, NotFoundError),
    ],
)
def test_katos_names_catch_our_errors(ours: type[KatoError], katos: type[KatoError]) -> None:
    assert issubclass(ours, katos)
    assert error_class_for(ours.code) is ours  # the service's codes still pick our classes


def test_a_real_session_limit_is_caught_as_resource_exhausted(node_id: str) -> None:
    core = Kato(Settings(), MemorySessionStore(max_sessions=1), MemoryNodes())

    async def two_sessions() -> None:
        await core.create_session(node_id)
        await core.create_session(node_id)

    with pytest.raises(ResourceExhaustedError) as info:
        asyncio.run(two_sessions())
    assert info.value.code == "SESSION_LIMIT" and info.value.recoverable


def test_a_real_missing_session_is_caught_as_katos_base(node_id: str) -> None:
    with kato.KatoClient(node_id, backend=kato.LocalBackend()) as k:
        k.close()
        with pytest.raises(KatoV2Exception) as info:
            k.get_stm()
    assert info.value.error_code == "SESSION_NOT_FOUND"


def test_an_answer_of_the_service_is_rebuilt_as_one_of_katos() -> None:
    body = {"detail": "down", "error": {"code": "STORE_UNAVAILABLE", "message": "down"}}
    exc = from_error_body(503, body)
    assert isinstance(exc, DatabaseConnectionError) and exc.error_code == "STORE_UNAVAILABLE"
