"""Rows of a SQL query over PostgreSQL's wire protocol (Redshift, PostgreSQL), paged by a watermark.

The query is a SELECT that filters ``<watermark column> > %(watermark)s``; each round runs it, wrapped
as ``SELECT * FROM (query) ORDER BY <column> LIMIT page_size``, with the last checkpointed watermark,
submits the rows and checkpoints the page's largest watermark.

Ties at a page boundary: a page never ends inside a group of rows sharing one watermark. When a
page is full, the rows of its last watermark value are replaced by *all* rows with that value (a
second query, ``... WHERE <column> = last``), so checkpointing that value and asking strictly
greater next time skips nothing and re-reads nothing; no tiebreaker column is needed, and a group
larger than page_size still makes progress. What no watermark scheme sees is a row committed later
with a watermark at or below the checkpoint: use a column the database assigns at insert time
(an identity or a load timestamp), not an event time.

Values become JSON as in CSV's column mapping; datetimes become ISO-8601 Z strings. The DSN's
password never appears in logs, errors or `retain source list`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from retain.sources.base import (DEFAULT_MAX_RECORDS, REQUIRED, PollReport, Source, SourceError,
                                 SourceOptionError, plain_value, row_to_message)

PART = "watermark"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,126}$")


def _password(dsn: str) -> str | None:
    try:
        return conninfo_to_dict(dsn).get("password") or None
    except psycopg.Error:
        return None


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ***."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        dsn = urlunsplit(parts)
    else:
        dsn = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)
    password = _password(dsn)
    return dsn.replace(password, "***") if password and password != "***" else dsn


def watermark_text(value: Any) -> str:
    value = plain_value(value)
    return value if isinstance(value, str) else str(value)


class RedshiftSource(Source):
    kind: ClassVar[str] = "redshift"
    OPTIONS: ClassVar[dict[str, Any]] = {"dsn": REQUIRED, "query": REQUIRED, "watermark_column": REQUIRED,
                                         "initial_watermark": "1970-01-01T00:00:00Z", "page_size": 1000}

    @classmethod
    def check_options(cls, values: dict[str, Any]) -> dict[str, Any]:
        dsn = str(values["dsn"])
        try:
            conninfo_to_dict(dsn)
        except psycopg.Error:
            # Not the parser's message: it quotes the DSN, password and all.
            raise SourceOptionError("dsn", "not a valid connection string (postgresql://user@host:port/db or "
                                           "'host=... dbname=...')") from None
        query = str(values["query"]).strip().rstrip(";").strip()
        if not re.match(r"(?is)^\s*(select|with)\b", query):
            raise SourceOptionError("query", "must be a SELECT")
        if re.search(r"%(?!\(\w+\)s)", query.replace("%%", "")):
            raise SourceOptionError("query", "a literal % is written %% (psycopg parameter syntax)")
        names = set(_PLACEHOLDER.findall(query))
        if "watermark" not in names:
            raise SourceOptionError("query", "must filter on the watermark: ... WHERE <column> > %(watermark)s")
        if names - {"watermark"}:
            raise SourceOptionError("query", f"only %(watermark)s may be a parameter, not {sorted(names - {'watermark'})}")
        column = str(values["watermark_column"])
        if not _COLUMN.match(column):
            raise SourceOptionError("watermark_column", "must be a plain column name of the query's result")
        try:
            page_size = int(values["page_size"])
        except (TypeError, ValueError):
            raise SourceOptionError("page_size", "must be a whole number") from None
        if not 1 <= page_size <= 100_000:
            raise SourceOptionError("page_size", "must be between 1 and 100000")
        return {"dsn": dsn, "query": query, "watermark_column": column,
                "initial_watermark": str(values["initial_watermark"]), "page_size": page_size}

    @classmethod
    def redact_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {**options, "dsn": redact_dsn(str(options.get("dsn", "")))}

    def _error(self, what: str, exc: BaseException) -> SourceError:
        message = f"redshift source {self.name}: {what} failed: {exc}"
        password = _password(self.options["dsn"])
        if password:
            message = message.replace(password, "***")
        return SourceError(message.replace(self.options["dsn"], redact_dsn(self.options["dsn"])))

    def _connect(self) -> psycopg.Connection:
        try:
            # autocommit: no transaction stays open between pages; prepare_threshold=None: Redshift
            # and connection poolers in front of it do not keep server-side prepared statements.
            return psycopg.connect(self.options["dsn"], autocommit=True, connect_timeout=15, prepare_threshold=None,
                                   row_factory=dict_row, application_name=f"retain-source-{self.name}"[:63])
        except psycopg.Error as exc:
            raise self._error("connecting", exc) from None

    def _statements(self) -> tuple[sql.Composed, sql.Composed]:
        inner = sql.SQL(self.options["query"])
        column = sql.Identifier(self.options["watermark_column"])
        # The page size inline (a validated int), not a parameter: not every engine binds LIMIT.
        page = sql.SQL("SELECT * FROM ({}) AS retain_page ORDER BY {} LIMIT {}").format(
            inner, column, sql.Literal(self.options["page_size"]))
        tie = sql.SQL("SELECT * FROM ({}) AS retain_tie WHERE {} = %(retain_tie)s").format(inner, column)
        return page, tie

    def poll_once(self, max_records: int = DEFAULT_MAX_RECORDS) -> PollReport:
        report = self.new_report()
        column, size = self.options["watermark_column"], self.options["page_size"]
        watermark = self.checkpoints.get(PART) or self.options["initial_watermark"]
        page_sql, tie_sql = self._statements()
        with self._connect() as conn:
            while report.records < max_records:
                try:
                    rows = conn.execute(page_sql, {"watermark": watermark}).fetchall()
                    if rows and column not in rows[0]:
                        raise SourceError(f"redshift source {self.name}: option 'watermark_column': {column!r} is "
                                          f"not a column of the query's result ({', '.join(rows[0])})")
                    full = len(rows) >= size
                    if full:
                        last = rows[-1][column]
                        tied = conn.execute(tie_sql, {"watermark": watermark, "retain_tie": last}).fetchall()
                        rows = [r for r in rows if r[column] != last] + tied
                except psycopg.Error as exc:
                    raise self._error("the query", exc) from None
                if not rows:
                    break
                self.submit_messages((row_to_message(r) for r in rows), report)
                watermark = watermark_text(rows[-1][column])
                self.checkpoints.set(PART, watermark)
                report.records += len(rows)
                report.checkpoints += 1
                if not full:
                    break
            else:
                report.more = True
        return report

