"""The embedded SQLite database, set up to hold a class's load: webhooks and launches at once.

- WAL journal: readers never wait for the writer, nor the writer for readers.
- A busy timeout of 30 s: a writer waits for the lock instead of failing "database is locked".
- The write lock is taken up front. pysqlite's own transaction handling is turned off
  (`isolation_level = None`: SQLAlchemy's documented recipe, without which SAVEPOINTs — one
  per inbox event — do not nest properly), and the tool emits `BEGIN IMMEDIATE` itself, just
  before the first statement of a transaction that writes. Reads before it run in autocommit and
  hold nothing. So a transaction that reads, waits (an HTTP call to a provider, say) and then
  writes never fails on a stale snapshot (SQLITE_BUSY_SNAPSHOT, which no busy timeout retries —
  what a deferred BEGIN at the start of every transaction would bring), and holds the write lock
  only from its first write to its commit, which the tool keeps short.

PostgreSQL engines are left as they are.
"""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_SECONDS = 30
# Statements that write (SAVEPOINT included: it opens the transaction the inbox writes in).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT", "CREATE", "DROP", "ALTER")


def configure(engine: Engine) -> None:
    """Attach the settings above to a SQLite engine; any other engine is left alone."""
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", _set_up_connection)
    event.listen(engine, "before_cursor_execute", _begin_before_the_first_write)


def _set_up_connection(dbapi_connection, _connection_record) -> None:
    dbapi_connection.isolation_level = None  # the tool emits BEGIN itself (below)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA journal_mode = WAL")  # kept in the database file; an in-memory one ignores it
    cursor.close()


def _begin_before_the_first_write(_connection, cursor, statement, _parameters, _context, _executemany) -> None:
    if not cursor.connection.in_transaction and statement.lstrip()[:9].upper().startswith(_WRITES):
        cursor.execute("BEGIN IMMEDIATE")
