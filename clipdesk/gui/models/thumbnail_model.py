"""The grid's model: a list of result items, pixmaps made lazily (Anki's browser model).

The model holds only ids, paths and scores. ``data(DecorationRole)`` answers
from a bounded LRU of pixmaps, or with a placeholder plus a de-duplicated
request to the ``ThumbnailLoader``; when the image arrives it becomes a pixmap
here, on the GUI thread, and only that row is repainted.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

from PySide6.QtCore import QAbstractListModel, QByteArray, QMimeData, QModelIndex, QPersistentModelIndex, Qt, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QPalette, QPen, QPixmap

from clipdesk.gui.thumbnails import ThumbnailLoader

URI_LIST = "text/uri-list"
# Pixmaps kept when no limit is given: what fits this many bytes at the
# current size (4:3 photos, 4 bytes a pixel), but never fewer than MIN_CACHE.
CACHE_BUDGET_BYTES = 128 * 1024 * 1024
MIN_CACHE = 256  # more than any screenful: a smaller cache would evict visible rows


@dataclass(slots=True)  # 100k of them: no per-instance __dict__
class ResultItem:
    photo_id: int
    path: str
    score: float | None = None
    relevant: bool = True  # False: below the relevance cut, shown dimmed
    why: str = ""  # why it matched, in a few words (the cell's second line)
    why_detail: str = ""  # the same in full (the tooltip)


def display_text(text: str) -> str:
    """``text`` as Qt can show it: undecodable bytes of a file name become U+FFFD.

    PySide silently drops lone surrogates (how Python keeps non-UTF-8 names),
    which could show, or hand on, a different file's name.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the file name's real bytes
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "replace")  # a lone surrogate that is no escaped byte
    return raw.decode("utf-8", "replace")


def file_url(path: str) -> QUrl:
    """A ``file:`` URL naming exactly ``path``, even when the name is not valid UTF-8.

    ``QUrl.fromLocalFile`` would encode a surrogate escape as three bogus bytes;
    percent-encoding the real bytes is what file managers decode.
    """
    if os.name == "nt":
        return QUrl.fromLocalFile(path)
    raw = os.fsencode(os.path.abspath(path))
    return QUrl.fromEncoded(QByteArray(b"file://" + quote_from_bytes(raw, safe="/").encode("ascii")))


class ThumbnailModel(QAbstractListModel):
    """Result items for ``ThumbnailGrid``; photo ids are expected to be unique."""

    PhotoIdRole = Qt.ItemDataRole.UserRole + 1
    PathRole = Qt.ItemDataRole.UserRole + 2  # display form; use ``item(row).path`` for the exact path
    ScoreRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, loader: ThumbnailLoader, parent=None, cache_limit: int | None = None) -> None:
        super().__init__(parent)
        self._loader = loader
        self._items: list[ResultItem] = []
        self._rows: dict[int, int] = {}
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()
        self._failed: dict[int, str] = {}
        self._cache_limit = cache_limit
        self._placeholders: dict[bool, QPixmap] = {}
        loader.loaded.connect(self._on_loaded)
        loader.failed.connect(self._on_failed)
        loader.size_changed.connect(self._on_size_changed)

    # -- items ---------------------------------------------------------------------------

    @property
    def loader(self) -> ThumbnailLoader:
        return self._loader

    def set_items(self, items: list[ResultItem]) -> None:
        """Replace the list (one model reset); queued loads for the old list are dropped."""
        self.beginResetModel()
        self._items = list(items)
        self._rows = {}
        for row, item in enumerate(self._items):
            self._rows.setdefault(item.photo_id, row)
        self._loader.keep_only(set())
        self.endResetModel()

    def append_items(self, items: list[ResultItem]) -> None:
        """Add a chunk of rows at the end with one ``beginInsertRows``."""
        if not items:
            return
        first = len(self._items)
        self.beginInsertRows(QModelIndex(), first, first + len(items) - 1)
        self._items.extend(items)
        for row, item in enumerate(items, first):
            self._rows.setdefault(item.photo_id, row)
        self.endInsertRows()

    def clear(self) -> None:
        self.set_items([])

    def item(self, row: int) -> ResultItem:
        return self._items[row]

    def row_of(self, photo_id: int) -> int | None:
        return self._rows.get(photo_id)

    # -- pixmap cache ----------------------------------------------------------------------

    @property
    def cache_limit(self) -> int:
        if self._cache_limit is not None:
            return max(1, self._cache_limit)
        size = self._loader.size
        return max(MIN_CACHE, CACHE_BUDGET_BYTES // (size * size * 3))  # 4:3 at 4 bytes a pixel

    @property
    def cached_count(self) -> int:
        return len(self._pixmaps)

    def has_pixmap(self, photo_id: int) -> bool:
        """Whether the photo's thumbnail is in the pixmap cache (does not touch the LRU order)."""
        return photo_id in self._pixmaps

    def _on_loaded(self, photo_id: int, image: QImage) -> None:
        row = self._rows.get(photo_id)
        if row is None:
            return  # no longer listed: not worth a cache slot
        self._pixmaps[photo_id] = QPixmap.fromImage(image)
        self._pixmaps.move_to_end(photo_id)
        while len(self._pixmaps) > self.cache_limit:
            self._pixmaps.popitem(last=False)
        self._row_changed(row)

    def _on_failed(self, photo_id: int, reason: str) -> None:
        row = self._rows.get(photo_id)
        if row is not None:
            self._failed[photo_id] = reason  # not requested again for this list
            self._row_changed(row)

    def _on_size_changed(self, _px: int) -> None:
        self._pixmaps.clear()
        self._placeholders.clear()
        if self._items:
            self.dataChanged.emit(self.index(0), self.index(len(self._items) - 1), [Qt.ItemDataRole.DecorationRole])

    def _row_changed(self, row: int) -> None:
        index = self.index(row)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole])

    def _placeholder(self, broken: bool) -> QPixmap:
        """A flat square (a crossed one for a photo that cannot be shown), made once per size."""
        pixmap = self._placeholders.get(broken)
        if pixmap is None:
            size = self._loader.size
            pixmap = QPixmap(size, size)
            pixmap.fill(QGuiApplication.palette().color(QPalette.ColorRole.Midlight))
            if broken:
                painter = QPainter(pixmap)
                painter.setPen(QPen(QColor(160, 60, 60), max(2, size // 40)))
                m = size // 4
                painter.drawLine(m, m, size - m, size - m)
                painter.drawLine(size - m, m, m, size - m)
                painter.end()
            self._placeholders[broken] = pixmap
        return pixmap

    # -- Qt model API ----------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        row = index.row()
        if not index.isValid() or not 0 <= row < len(self._items):
            return None
        item = self._items[row]
        if role == Qt.ItemDataRole.DecorationRole:
            pixmap = self._pixmaps.get(item.photo_id)
            if pixmap is not None:
                self._pixmaps.move_to_end(item.photo_id)
                return pixmap
            if item.photo_id in self._failed:
                return self._placeholder(broken=True)
            self._loader.request(item.photo_id, item.path)  # de-duplicated, asynchronous
            return self._placeholder(broken=False)
        if role == Qt.ItemDataRole.DisplayRole:
            name = display_text(os.path.basename(item.path))
            if item.score is None:
                return name
            return f"{name}\n{display_text(item.why)}" if item.why else f"{name}\n{item.score:.3f}"
        if role == Qt.ItemDataRole.ToolTipRole:
            reason = self._failed.get(item.photo_id)
            text = display_text(item.path + (f"\n{item.why_detail}" if item.why_detail else ""))
            return text if reason is None else f"{text}\nCannot show: {reason}"
        if role == Qt.ItemDataRole.ForegroundRole and not item.relevant:
            return QGuiApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        if role == self.PhotoIdRole:
            return item.photo_id
        if role == self.PathRole:
            return display_text(item.path)
        if role == self.ScoreRole:
            return item.score
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
                | Qt.ItemFlag.ItemNeverHasChildren)

    def supportedDragActions(self) -> Qt.DropAction:
        # Never Move: a file manager receiving a move would take the photo out of its folder.
        return Qt.DropAction.CopyAction | Qt.DropAction.LinkAction

    def mimeTypes(self) -> list[str]:
        return [URI_LIST]

    def mimeData(self, indexes) -> QMimeData:
        rows = sorted({i.row() for i in indexes if i.isValid() and 0 <= i.row() < len(self._items)})
        paths = [self._items[r].path for r in rows]
        mime = QMimeData()
        mime.setUrls([file_url(p) for p in paths])
        mime.setText("\n".join(display_text(p) for p in paths))
        return mime
