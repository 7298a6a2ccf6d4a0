"""A handle on one queue message another process may wake: its id and current pop receipt.

Azure Queue Storage lets whoever holds a message's id and its latest pop receipt change the
message's visibility (Update Message, ``PUT .../messages/{id}?popreceipt=…&visibilitytimeout=0``,
learn.microsoft.com/rest/api/storageservices/update-message); any receive or update issues a new
receipt and invalidates the old one, so a handle wakes its message at most once. The dispatcher
keeps the handle of a request it put back to wait for capacity in the ledger, and the reconciler
wakes it when capacity frees (``shared.flows.wake``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MessageHandle:
    """``message_id``/``pop_receipt`` as Put Message (or the last Update Message) returned them."""

    message_id: str
    pop_receipt: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.message_id, "receipt": self.pop_receipt}

    @classmethod
    def of(cls, value: Mapping[str, Any] | None) -> MessageHandle | None:
        """The handle kept as :meth:`as_dict` wrote it, or None when there is none (or it is malformed)."""
        if not isinstance(value, Mapping):
            return None
        ident, receipt = value.get("id"), value.get("receipt")
        if isinstance(ident, str) and isinstance(receipt, str) and ident and receipt:
            return cls(ident, receipt)
        return None
