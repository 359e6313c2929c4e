"""Opening a library: directory layout, SQLite pragmas, migrations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from clipdesk.errors import LibraryError
from clipdesk.paths import DB_NAME, LIBRARY_MARKER
from clipdesk.store.models import Meta

T = TypeVar("T")
_MIGRATIONS = Path(__file__).with_name("migrations")
# Meta key: the ``--model`` text the library was last indexed with (CLI and app share it).
MODEL_META = "model_spec"
_MARKER_TEXT = "This folder is a clipdesk library. clipdesk never indexes folders holding this file.\n"


def _alembic_config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _on_connect(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable across process crashes in WAL mode; only power loss
    # can drop the last transactions, never corrupt the file.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Library:
    """One clipdesk library directory: ``clipdesk.db`` plus derived files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_path = self.root / DB_NAME
        self.vectors_dir = self.root / "vectors"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            marker = self.root / LIBRARY_MARKER
            if not marker.exists():
                marker.write_text(_MARKER_TEXT)
        except OSError as exc:
            raise LibraryError(f"Cannot create the library folder {self.root}: {exc.strerror or exc}") from None
        self.engine: Engine = create_engine(f"sqlite:///{self.db_path}")
        event.listen(self.engine, "connect", _on_connect)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._migrate()

    def _migrate(self) -> None:
        try:
            with self.engine.begin() as conn:
                # pysqlite runs DDL outside any transaction; without this a kill
                # mid-migration leaves tables but no version row, and two
                # processes could create the same new library at once.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                current = MigrationContext.configure(conn).get_current_revision()
                head = ScriptDirectory.from_config(_alembic_config(conn)).get_current_head()
                if current != head:
                    command.upgrade(_alembic_config(conn), "head")
        except (DatabaseError, OperationalError) as exc:
            raise LibraryError(
                f"The library database {self.db_path} cannot be opened ({exc.orig}). "
                "If it is damaged, move it away and index again: the photos themselves are untouched."
            ) from None

    def session(self) -> Session:
        return self.sessions()

    # How writes reach the database: on the calling thread, unless the app hands them to its one
    # writer lane (``gui/controller.py`` sets this to run the thunk there and wait for it).
    writer: Callable[[Callable[[], T]], T] = staticmethod(lambda thunk: thunk())

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in one write transaction, through ``writer``; returns what ``fn`` returns."""
        def thunk() -> T:
            with self.session() as s, s.begin():
                return fn(s)

        return self.writer(thunk)

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.session() as s:
            value = s.scalar(select(Meta.value).where(Meta.key == key))
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        self.write(lambda s: s.merge(Meta(key=key, value=value)))

    def vectors_generation(self) -> int:
        return int(self.get_meta("vectors_generation", "0"))

    def close(self) -> None:
        self.engine.dispose()


def open_library(root: Path) -> Library:
    return Library(root)
