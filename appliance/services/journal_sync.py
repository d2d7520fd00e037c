"""The journal as the edge agent reads it (pages of entries, positions, acks, summaries)
and as people read it (history: newest first, with names, actors and summaries)."""

from __future__ import annotations

import msgspec

from appliance.store import journal
from appliance.store.models import Vm
from towerbox_core.api.history import HistoryPage
from towerbox_core.api.sync import JournalAcked, JournalPage, JournalSummary
from towerbox_core.errors import Conflict
from towerbox_core.journal_history import history, known_name
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

    def history(self, before: int | None, limit: int, kind: str | None) -> HistoryPage:
        with journal.read_transaction():
            head = journal.head()
            upto = head + 1 if before is None else min(before, head + 1)
            entries = msgspec.convert(journal.entries_before(upto, limit, kind), list[WireEntry])
            names = _names_of_unnamed(entries)
        lines = history(entries, names)
        oldest = lines[-1].seq if lines else None
        return HistoryPage(
            head=head,
            entries=lines,
            next_before=oldest if oldest is not None and len(lines) == limit else None,
        )


def _names_of_unnamed(entries: list[WireEntry]) -> dict[str, str]:
    """Names for the objects no entry of the page names: a deleted VM's null state
    says nothing, so its name comes from its row (still there for a live VM) or from
    the newest older entry that named it. Each page needs this for few objects."""
    named = {e.object_id for e in entries if known_name(e.object_type, e.object_id, e.state)}
    wanted = {e.object_id for e in entries} - named
    if not wanted:
        return {}
    rows = Vm.select(Vm.id, Vm.name).where(Vm.id.in_(list(wanted)))
    names: dict[str, str] = {str(vm.id): str(vm.name) for vm in rows}
    wanted -= names.keys()
    if wanted:
        before = min(e.seq for e in entries)
        types = {e.object_id: e.object_type for e in entries}
        for object_id, state in journal.named_states(wanted, before):
            name = known_name(types[object_id], object_id, state)
            if name and object_id in wanted:
                names[object_id] = name
                wanted.discard(object_id)
                if not wanted:
                    break
    return names
