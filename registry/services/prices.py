"""The registry's price book: versions kept in its database, checked like the node's.

The registry rates fleet reports with its own book; each node rates its own reports
with its own book. The quantities are the same on both, the costs only where the
books agree. Tenants are per site, so a ``tenant_rates`` entry is not checked
against any site's tenants: it applies wherever a tenant of that name exists.
"""

from __future__ import annotations

import logging
import time

import msgspec

from registry.services.operators import OperatorPrincipal
from registry.store.models import PriceBookRow, db_proxy, tuples
from towerbox_core.api.usage import PriceBooks
from towerbox_core.metering.prices import PriceBook, check_book, scheduled_version
from towerbox_core.names import check_name

log = logging.getLogger(__name__)

_decode_book = msgspec.json.Decoder(PriceBook).decode


class PriceBookService:
    def books(self) -> PriceBooks:
        rows = tuples(PriceBookRow.select(PriceBookRow.book).order_by(PriceBookRow.id))
        return PriceBooks(versions=[_decode_book(book) for (book,) in rows])

    def add(self, principal: OperatorPrincipal, book: PriceBook) -> PriceBooks:
        """A new version (admin): effective on the hour, after the newest one."""
        principal.require_write()
        for tenant in book.tenant_rates:
            check_name("tenant", tenant, field=f"tenant_rates.{tenant}")
        with db_proxy.obj.atomic():
            versions = self.books().versions
            check_book(book, versions[-1] if versions else None, time.time_ns() // 1000)
            PriceBookRow.create(
                effective_from=book.effective_from,
                book=msgspec.json.encode(book).decode(),
                created_by=principal.username,
            )
        log.info("price book effective %s added by %s", book.effective_from, principal.username)
        return PriceBooks(versions=[*versions, book])

    def remove(self, principal: OperatorPrincipal, effective_from: str) -> PriceBooks:
        """Withdraw a version not yet in effect (admin)."""
        principal.require_write()
        with db_proxy.obj.atomic():
            versions = self.books().versions
            gone = versions.pop(scheduled_version(versions, effective_from, time.time_ns() // 1000))
            PriceBookRow.delete().where(
                PriceBookRow.effective_from == gone.effective_from
            ).execute()
        log.info(
            "price book version effective %s withdrawn by %s",
            gone.effective_from,
            principal.username,
        )
        return PriceBooks(versions=versions)
