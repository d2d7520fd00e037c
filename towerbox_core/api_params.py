"""Integer path and query parameters the APIs share, bounded to what the database can
store: an unbounded integer (a 25-digit token id, a huge offset) once reached SQLite
and came back a 500 ("Python int too large to convert to SQLite INTEGER"); bounded
here it is a 400 that names the parameter."""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter, QueryParameter

SQL_INT_MAX = 2**63 - 1

RowIdPath = Annotated[int, PathParameter(ge=1, le=SQL_INT_MAX)]
CountQuery = Annotated[int, QueryParameter(ge=0, le=SQL_INT_MAX)]  # offsets, sequence numbers
OptionalCountQuery = Annotated[int | None, QueryParameter(ge=0, le=SQL_INT_MAX)]
