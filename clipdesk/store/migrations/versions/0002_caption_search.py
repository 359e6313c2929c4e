"""Caption keywords: an FTS5 index over captions, kept in sync by triggers.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# External-content FTS5: the text lives once, in ``captions``; the index
# follows every insert, update and delete through the triggers.
_STATEMENTS = [
    "CREATE VIRTUAL TABLE captions_fts USING fts5(text, content='captions', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    """CREATE TRIGGER captions_fts_insert AFTER INSERT ON captions BEGIN
    INSERT INTO captions_fts(rowid, text) VALUES (new.id, new.text); END""",
    """CREATE TRIGGER captions_fts_delete AFTER DELETE ON captions BEGIN
    INSERT INTO captions_fts(captions_fts, rowid, text) VALUES ('delete', old.id, old.text); END""",
    """CREATE TRIGGER captions_fts_update AFTER UPDATE OF text ON captions BEGIN
    INSERT INTO captions_fts(captions_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO captions_fts(rowid, text) VALUES (new.id, new.text); END""",
    "INSERT INTO captions_fts(captions_fts) VALUES ('rebuild')",
]


def upgrade() -> None:
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER captions_fts_{trigger}")
    op.execute("DROP TABLE captions_fts")
