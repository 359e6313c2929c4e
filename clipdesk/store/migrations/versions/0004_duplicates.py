"""Duplicates: perceptual hashes per photo, and the trash log that undo reads.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

from clipdesk.store.models import FsPath

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photo_hashes",
        sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("pixel_hash", sa.String(64), nullable=True),
        sa.Column("phash", sa.BigInteger, nullable=True),
        sa.Column("dhash", sa.BigInteger, nullable=True),
        sa.Column("phash_variants", sa.LargeBinary, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("computed_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_photo_hashes_pixel_hash", "photo_hashes", ["pixel_hash"])
    op.create_table(
        "trash_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="SET NULL"), nullable=True),
        sa.Column("keeper_id", sa.Integer, nullable=True),
        sa.Column("original_path", FsPath, nullable=False),
        sa.Column("trash_path", FsPath, nullable=True),
        sa.Column("info_path", FsPath, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("trashed_at", sa.DateTime, nullable=False),
        sa.Column("restored_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_trash_log_batch_id", "trash_log", ["batch_id"])
    op.create_index("ix_trash_log_photo_id", "trash_log", ["photo_id"])


def downgrade() -> None:
    op.drop_table("trash_log")
    op.drop_table("photo_hashes")
