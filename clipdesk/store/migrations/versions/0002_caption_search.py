"""Caption keywords: an FTS5 index over captions, kept in sync by triggers.

One index row per photo (rowid = photo id) holds all its captions, so a
search gets photo ids straight from the index, with no join, and a query
can match words from the automatic and the hand-written caption together.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _refresh(ref: str) -> str:
    """Statements that rebuild the index row of photo ``ref`` (``new.photo_id`` / ``old.photo_id``)."""
    return (f"DELETE FROM captions_fts WHERE rowid = {ref};\n"
            f"    INSERT INTO captions_fts(rowid, text) SELECT {ref}, group_concat(text, ' | ') FROM captions "
            f"WHERE photo_id = {ref} HAVING count(*) > 0;")


_STATEMENTS = [
    "CREATE VIRTUAL TABLE captions_fts USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER captions_fts_insert AFTER INSERT ON captions BEGIN\n    {_refresh('new.photo_id')}\nEND",
    f"CREATE TRIGGER captions_fts_delete AFTER DELETE ON captions BEGIN\n    {_refresh('old.photo_id')}\nEND",
    f"""CREATE TRIGGER captions_fts_update AFTER UPDATE OF text, photo_id ON captions BEGIN
    {_refresh('old.photo_id')}
    {_refresh('new.photo_id')}
END""",
    "INSERT INTO captions_fts(rowid, text) SELECT photo_id, group_concat(text, ' | ') FROM captions "
    "GROUP BY photo_id",
]


def upgrade() -> None:
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER captions_fts_{trigger}")
    op.execute("DROP TABLE captions_fts")
