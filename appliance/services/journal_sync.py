"""The journal as the edge agent reads it: pages of entries, positions, acks, summaries."""

from __future__ import annotations

import msgspec

from appliance.store import journal
from towerbox_core.api.sync import JournalAcked, JournalPage, JournalSummary
from towerbox_core.errors import Conflict
from towerbox_core.wire import WireEntry


class JournalService:
    def ack(self, seq: int) -> JournalAcked:
        """The registry holds everything up to ``seq``; never beyond the head."""
        with journal.write_transaction():
            head = journal.head()
            if seq > head:
                raise Conflict(
                    f"cannot ack seq {seq}: the journal's head is {head}",
                    code="ack_beyond_head",
                    head=head,
                )
            acked = journal.record_ack(seq)
        return JournalAcked(acked_seq=acked, head=head)

    def summary(self, through: int | None) -> JournalSummary:
        return msgspec.convert(journal.summary(through), JournalSummary)

    def page(self, after: int, limit: int, kind: str | None) -> JournalPage:
        # Positions first: an entry appended in between shows up in the next read.
        return JournalPage(
            head=journal.head(),
            compacted_through=journal.compacted_through(),
            acked_seq=journal.acked_seq(),
            entries=msgspec.convert(journal.entries(after, limit, kind), list[WireEntry]),
        )
