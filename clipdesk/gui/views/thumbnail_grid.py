"""The thumbnail grid: a QListView in icon mode over ``ThumbnailModel``.

Fixed grid cells and uniform item sizes keep layout O(1) per item, so 100k
rows lay out in a fraction of a second; only painted rows ask for pixmaps.
After scrolling or resizing settles, queued thumbnail loads for rows that are
no longer visible are dropped. The grid only emits what the user asked for:
opening, revealing and previewing are the main window's business.

Shortcuts (active while the grid has focus): Find similar ``Ctrl+Shift+S``,
Open ``Enter``, Copy path ``Ctrl+Shift+C``, Preview ``Space``.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, QModelIndex, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QListView, QMenu

from clipdesk.gui.models.thumbnail_model import ResultItem, ThumbnailModel, display_text
from clipdesk.gui.views.thumbnail_delegate import ThumbnailDelegate

FIND_SIMILAR_SHORTCUT = "Ctrl+Shift+S"
COPY_PATH_SHORTCUT = "Ctrl+Shift+C"
VISIBLE_DEBOUNCE_MS = 30
LAYOUT_BATCH = 2000  # rows laid out per event-loop turn (Batched mode keeps the UI responsive)
_SCAN_STEP = 6  # px between probe lines when finding the first/last visible row


class ThumbnailGrid(QListView):
    """Icon-mode view of a ``ThumbnailModel``: multi-select, drag out, context menu.

    Signals:
        find_similar_requested(int): photo id.
        open_requested(list): paths to open (str; may hold surrogate escapes).
        reveal_requested(str): a path to show in its folder.
        preview_requested(int): photo id (Space).
        current_photo_changed(int): photo id of the current item, -1 for none.
    """

    find_similar_requested = Signal(int)
    open_requested = Signal(list)
    reveal_requested = Signal(str)
    preview_requested = Signal(int)
    current_photo_changed = Signal(int)

    def __init__(self, parent=None, thumb_size: int = 160) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)  # IconMode defaults to Free: per-item positions
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(LAYOUT_BATCH)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setWordWrap(False)
        self._delegate = ThumbnailDelegate(self)
        self.setItemDelegate(self._delegate)
        self._current_id = -1
        self.visible_rows_cache = range(0)  # what the last keep_only kept (for tests, benches)
        self._visible_timer = QTimer(self, singleShot=True, interval=VISIBLE_DEBOUNCE_MS)
        self._visible_timer.timeout.connect(self._update_visible)
        self.verticalScrollBar().valueChanged.connect(self._schedule_visible)
        self.activated.connect(self._on_activated)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._show_context_menu)

        self.find_similar_action = self._action("Find similar", self._find_similar, FIND_SIMILAR_SHORTCUT)
        self.open_action = self._action("Open", self._open, QKeySequence(Qt.Key.Key_Return),
                                        QKeySequence(Qt.Key.Key_Enter))
        self.reveal_action = self._action("Reveal in folder", self._reveal)
        self.copy_path_action = self._action("Copy path", self._copy_paths, COPY_PATH_SHORTCUT)
        self.preview_action = self._action("Preview", self._preview, QKeySequence(Qt.Key.Key_Space))
        self._thumb_size = 0
        self.set_thumb_size(thumb_size)
        self._update_actions()

    def _action(self, text: str, slot, *shortcuts) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    # -- model and size --------------------------------------------------------------------

    def thumb_model(self) -> ThumbnailModel | None:
        model = self.model()
        return model if isinstance(model, ThumbnailModel) else None

    def setModel(self, model) -> None:
        super().setModel(model)
        if model is None:
            return
        self.selectionModel().currentChanged.connect(self._on_current_changed)
        self.selectionModel().selectionChanged.connect(self._update_actions)
        for signal in (model.modelReset, model.rowsInserted, model.rowsRemoved, model.layoutChanged):
            signal.connect(self._schedule_visible)
        model.modelReset.connect(self._on_model_reset)
        if isinstance(model, ThumbnailModel):
            self.set_thumb_size(model.loader.size)  # the loader's size until told otherwise
        self._update_actions()

    def set_thumb_size(self, px: int) -> None:
        """Cells fit ``px``-pixel thumbnails plus two caption lines; the loader follows."""
        px = int(px)
        if px != self._thumb_size:
            self._thumb_size = px
            self._delegate.square = QSize(px, px)
            self.setIconSize(QSize(px, px))
            caption = 2 * self.fontMetrics().lineSpacing()  # file name + score
            self._delegate.item_size = QSize(px + 8, px + caption + 6)
            self.setGridSize(QSize(px + 16, px + caption + 12))
            self.verticalScrollBar().setSingleStep(max(1, (px + caption) // 3))
        model = self.thumb_model()
        if model is not None:
            model.loader.set_size(px)
        self._schedule_visible()

    @property
    def thumb_size(self) -> int:
        return self._thumb_size

    # -- what is on screen -----------------------------------------------------------------

    def visible_rows(self) -> range:
        """Rows whose cells intersect the viewport (rows flow left to right, so a range)."""
        model = self.model()
        count = model.rowCount() if model is not None else 0
        if count == 0:
            return range(0)
        area = self.viewport().rect()
        cell = self.gridSize()
        xs = list(range(cell.width() // 2, area.width(), max(1, cell.width() // 2))) or [area.width() // 2]

        def rows_on_line(y: int) -> list[int]:
            return [i.row() for x in xs if (i := self.indexAt(QPoint(x, y))).isValid()]

        def first_hit(ys, pick):
            return next((pick(rows) for y in ys if (rows := rows_on_line(y))), None)

        first = first_hit(range(area.top(), area.bottom() + 1, _SCAN_STEP), min)
        if first is None:
            return range(0)
        if self.visualRect(model.index(count - 1, 0)).intersects(area):
            return range(first, count)  # the end of the list is on screen: no scan upwards
        last = first_hit(range(area.bottom(), area.top() - 1, -_SCAN_STEP), max)
        return range(first, (last if last is not None else first) + 1)

    def _schedule_visible(self, *_args) -> None:
        self._visible_timer.start()

    def _update_visible(self) -> None:
        model = self.thumb_model()
        if model is None or not self.isVisible():
            return
        rows = self.visible_rows()
        self.visible_rows_cache = rows
        model.loader.keep_only({model.item(r).photo_id for r in rows})

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._schedule_visible()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._schedule_visible()

    # -- selection -------------------------------------------------------------------------

    def selected_items(self) -> list[ResultItem]:
        """Selected items in row order (reads selection ranges: cheap after select-all)."""
        model, selection = self.thumb_model(), self.selectionModel()
        if model is None or selection is None:
            return []
        rows = sorted({r for rng in selection.selection() for r in range(rng.top(), rng.bottom() + 1)})
        return [model.item(r) for r in rows]

    def _target_item(self) -> ResultItem | None:
        """The photo an action on one photo means: the current one if selected, else the
        first selected, else the current one."""
        model = self.thumb_model()
        if model is None:
            return None
        current = self.currentIndex()
        if current.isValid() and self.selectionModel().isSelected(current):
            return model.item(current.row())
        items = self.selected_items()
        if items:
            return items[0]
        return model.item(current.row()) if current.isValid() else None

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        model = self.thumb_model()
        photo_id = model.item(current.row()).photo_id if model is not None and current.isValid() else -1
        if photo_id != self._current_id:
            self._current_id = photo_id
            self.current_photo_changed.emit(photo_id)

    def _on_model_reset(self) -> None:
        # QItemSelectionModel.reset() emits nothing, but the current photo is gone.
        self._on_current_changed(QModelIndex(), QModelIndex())
        self._update_actions()

    def _update_actions(self, *_args: QItemSelection) -> None:
        has_selection = self.selectionModel() is not None and self.selectionModel().hasSelection()
        for action in (self.find_similar_action, self.open_action, self.reveal_action, self.copy_path_action,
                       self.preview_action):
            action.setEnabled(has_selection)

    # -- actions ---------------------------------------------------------------------------

    def context_menu(self) -> QMenu:
        """The menu shown on right-click (built fresh; the caller owns it)."""
        menu = QMenu(self)
        menu.addAction(self.find_similar_action)
        menu.addAction(self.preview_action)
        menu.addSeparator()
        menu.addAction(self.open_action)
        menu.addAction(self.reveal_action)
        menu.addAction(self.copy_path_action)
        return menu

    def _show_context_menu(self, pos: QPoint) -> None:
        if not self.indexAt(pos).isValid():
            return
        menu = self.context_menu()
        menu.exec(self.viewport().mapToGlobal(pos))
        menu.deleteLater()

    def _find_similar(self) -> None:
        item = self._target_item()
        if item is not None:
            self.find_similar_requested.emit(item.photo_id)

    def _open(self) -> None:
        paths = [item.path for item in self.selected_items()]
        if paths:
            self.open_requested.emit(paths)

    def _on_activated(self, index: QModelIndex) -> None:
        model = self.thumb_model()
        if model is not None and index.isValid():
            self.open_requested.emit([model.item(index.row()).path])

    def _reveal(self) -> None:
        item = self._target_item()
        if item is not None:
            self.reveal_requested.emit(item.path)

    def _copy_paths(self) -> None:
        items = self.selected_items()
        if items:
            # The clipboard holds text: an undecodable byte shows as U+FFFD.
            QGuiApplication.clipboard().setText("\n".join(display_text(i.path) for i in items))

    def _preview(self) -> None:
        item = self._target_item()
        if item is not None:
            self.preview_requested.emit(item.photo_id)

    def keyPressEvent(self, event) -> None:
        # Space previews (the shortcut normally catches it first); Ctrl+Space still toggles selection.
        if event.key() == Qt.Key.Key_Space and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            self._preview()
            event.accept()
            return
        super().keyPressEvent(event)
