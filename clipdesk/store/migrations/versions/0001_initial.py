"""Initial schema: folders, photos, embeddings, labels, captions, errors, meta.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from clipdesk.store.models import FsPath

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Every change to the embeddings table bumps one counter, in the same
# transaction, so a saved vector index can prove it is current.
_GENERATION_TRIGGERS = [
    f"""CREATE TRIGGER embeddings_generation_{event.lower()} AFTER {event} ON embeddings
    BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'vectors_generation'; END"""
    for event in ("INSERT", "UPDATE", "DELETE")
]


def upgrade() -> None:
    op.create_table(
        "folders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", FsPath, nullable=False, unique=True),
        sa.Column("added_at", sa.DateTime, nullable=False),
        sa.Column("last_scan_at", sa.DateTime),
        sa.Column("scan_complete", sa.Boolean, nullable=False),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("folder_id", sa.Integer, sa.ForeignKey("folders.id", ondelete="SET NULL")),
        sa.Column("path", FsPath, nullable=False, unique=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("taken_at", sa.DateTime),
        sa.Column("camera_make", sa.String(128)),
        sa.Column("camera_model", sa.String(128)),
        sa.Column("gps_lat", sa.Float),
        sa.Column("gps_lon", sa.Float),
        sa.Column("added_at", sa.DateTime, nullable=False),
        sa.Column("missing_since", sa.DateTime),
    )
    op.create_index("ix_photos_folder_id", "photos", ["folder_id"])
    op.create_index("ix_photos_content_hash", "photos", ["content_hash"])
    op.create_index("ix_photos_taken_at", "photos", ["taken_at"])
    op.create_index("ix_photos_missing_since", "photos", ["missing_since"])
    op.create_table(
        "embeddings",
        sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_key", sa.String(256), primary_key=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_embeddings_model_key", "embeddings", ["model_key"])
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(256), nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_key", sa.String(256)),
        sa.Column("evidence", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("photo_id", "label"),
    )
    op.create_index("ix_labels_photo_id", "labels", ["photo_id"])
    op.create_index("ix_labels_label", "labels", ["label"])
    op.create_table(
        "captions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("model_key", sa.String(256)),
        sa.Column("score", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("photo_id", "source"),
    )
    op.create_index("ix_captions_photo_id", "captions", ["photo_id"])
    op.create_table(
        "scan_errors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", FsPath, nullable=False, unique=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=False),
    )
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.bulk_insert(meta, [{"key": "vectors_generation", "value": "0"}])
    for trigger in _GENERATION_TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    for table in ("meta", "scan_errors", "captions", "labels", "embeddings", "photos", "folders"):
        op.drop_table(table)
