"""Request ids and ledger keys: a trailing newline is not a valid id (Python's `$` let it pass)."""

from __future__ import annotations

import pytest

from shared.ledger.api import bad_id
from shared.ledger.records import partition_key


@pytest.mark.parametrize(
    "key", ["job-1\n", "0123456789abcdef0123456789abcde\n", "{12345678-1234-1234-1234-123456789abc}"]
)
def test_api_ids_with_a_newline_or_a_uuid_spelling_are_400(key: str) -> None:
    response = bad_id(key)
    assert response is not None
    assert response.status == 400


def test_queue_message_ids_and_request_ids_are_valid() -> None:
    assert bad_id("job-1") is None
    assert bad_id("4f1c1e0a-8d7e-4d7b-9d0a-0a5b0c7e9f11") is None


def test_a_newline_in_a_key_never_reaches_table_storage() -> None:
    # Table storage refuses control characters in PartitionKey: such a key is hashed.
    assert partition_key("job-1") == "job-1"
    assert partition_key("job-1\n").startswith("~")
