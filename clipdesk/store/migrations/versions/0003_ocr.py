"""Words in photos: OCR results, and a trigram index over their folded text.

One ``ocr_results`` row per photo (the latest read, with the engine key and
content hash it came from). ``ocr_fts`` uses FTS5's ``trigram`` tokenizer
(SQLite >= 3.34), so a query term matches as a substring of the folded,
space-less text ("zlmmerzl4" holds "zl4"), found by the index rather than a
scan; triggers keep it in step with ``ocr_results.folded``.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _refresh(ref: str) -> str:
    return (f"DELETE FROM ocr_fts WHERE rowid = {ref}.photo_id;\n"
            f"    INSERT INTO ocr_fts(rowid, text) SELECT {ref}.photo_id, {ref}.folded WHERE {ref}.folded != '';")


_TRIGGERS = [
    f"CREATE TRIGGER ocr_fts_insert AFTER INSERT ON ocr_results BEGIN\n    {_refresh('new')}\nEND",
    "CREATE TRIGGER ocr_fts_delete AFTER DELETE ON ocr_results BEGIN\n"
    "    DELETE FROM ocr_fts WHERE rowid = old.photo_id;\nEND",
    "CREATE TRIGGER ocr_fts_update AFTER UPDATE OF folded, photo_id ON ocr_results BEGIN\n"
    f"    DELETE FROM ocr_fts WHERE rowid = old.photo_id;\n    {_refresh('new')}\nEND",
]


def upgrade() -> None:
    op.create_table(
        "ocr_results",
        sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("engine_key", sa.String(256), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("lines", sa.Text, nullable=False),
        sa.Column("folded", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_ocr_results_engine_key", "ocr_results", ["engine_key"])
    op.execute("CREATE VIRTUAL TABLE ocr_fts USING fts5(text, tokenize='trigram')")
    for statement in _TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER ocr_fts_{trigger}")
    op.execute("DROP TABLE ocr_fts")
    op.drop_index("ix_ocr_results_engine_key", "ocr_results")
    op.drop_table("ocr_results")
