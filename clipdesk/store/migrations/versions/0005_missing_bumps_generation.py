"""A photo going missing or coming back changes which vectors a search serves: it bumps the vectors generation.

Until now only changes to the embeddings table did, so a search cached by generation (the app's) could keep
serving a photo moved to the trash or deleted on disk, and a saved vector file or graph could not prove from
the generation alone that it still matched.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TRIGGER photos_missing_generation AFTER UPDATE OF missing_since ON photos
    WHEN old.missing_since IS NOT new.missing_since
    BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'vectors_generation'; END""")


def downgrade() -> None:
    op.execute("DROP TRIGGER photos_missing_generation")
