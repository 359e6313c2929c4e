"""The main window: sidebar, search bar, thumbnail grid, detail panel, status bar.

Layout and wiring only; the work happens on the controller's three lanes
(``gui/lanes.py``): this thread never reads the database or opens a photo.
The status bar shows whatever job is running (indexing, labels, captions,
exports) with its progress, Pause and Cancel.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import shiboken6
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from clipdesk.errors import ClipdeskError
from clipdesk.gui.controller import LibraryController, SearchRequest
from clipdesk.gui.dialogs import DropZone, ErrorsDialog, NoMatchPage, PreviewDialog
from clipdesk.gui.errors import show_error
from clipdesk.gui.label_actions import LabelActions
from clipdesk.gui.model_dialog import ModelDialog
from clipdesk.gui.models.thumbnail_model import ResultItem, ThumbnailModel, file_url
from clipdesk.gui.ocr_job import summary as ocr_summary
from clipdesk.gui.ocr_text import highlight_query
from clipdesk.gui.panels.caption_panel import CaptionPanel
from clipdesk.gui.panels.detail_panel import DetailPanel
from clipdesk.gui.panels.search_panel import QueryRequest, SearchBar
from clipdesk.gui.settings import Settings
from clipdesk.gui.sidebar import Sidebar
from clipdesk.gui.thumbnails import ThumbnailLoader
from clipdesk.gui.tune_dialog import TuneDialog, summary
from clipdesk.gui.views.thumbnail_grid import ThumbnailGrid
from clipdesk.imageio import is_supported
from clipdesk.search import Term, parse_text_query
from clipdesk.search.explain import why_brief, why_text
from clipdesk.store.queries import all_photos, folder_summaries, label_counts, photo_details, remove_folder
from clipdesk.thumbs import thumbnail_cache_dir

PAGE_DROP, PAGE_GRID, PAGE_NO_MATCH = range(3)


class MainWindow(QMainWindow):
    """clipdesk's single window."""

    def __init__(self, controller: LibraryController, settings: Settings) -> None:
        super().__init__()
        self.controller = controller
        self.settings = settings
        self.setWindowTitle("clipdesk")
        self.setAcceptDrops(True)
        self._search_id = 0
        self._last_request: SearchRequest | None = None
        self._search_started = 0.0
        self._browse_folder = ""
        self._browse_label = ""
        self._browse_generation = 0
        self._indexing_roots: list[str] = []
        self._details_seq = 0
        self.tune_dialog: TuneDialog | None = None
        self._build()
        self._connect()
        self._restore()
        self._refresh_timer = QTimer(self, singleShot=True, interval=700, timeout=self._refresh_library)
        self._refresh_library()
        self.browse()

    # -- construction ---------------------------------------------------------------------

    def _build(self) -> None:
        size = self.settings.thumb_size
        self.loader = ThumbnailLoader(thumbnail_cache_dir(), size=size, tasks=self.controller.tasks, parent=self)
        self.grid_model = ThumbnailModel(self.loader, parent=self)
        self.grid = ThumbnailGrid()
        self.grid.setModel(self.grid_model)
        self.grid.set_thumb_size(size)
        self.search_bar = SearchBar()
        self.sidebar = Sidebar()
        self.detail = DetailPanel(tasks=self.controller.tasks, library=lambda: self.controller.library)
        self.captions = CaptionPanel(self.controller, lambda: [i.photo_id for i in self.grid.selected_items()])
        self.drop_zone = DropZone()
        self.no_match = NoMatchPage()

        self.banner = QLabel(wordWrap=True, visible=False, objectName="banner")
        self.banner.setStyleSheet("QLabel#banner { background: palette(alternate-base); padding: 8px; }")
        self.banner_button = QPushButton("Model settings…", visible=False)
        banner_row = QHBoxLayout()
        banner_row.addWidget(self.banner, 1)
        banner_row.addWidget(self.banner_button)

        self.pages = QStackedWidget()
        for page in (self.drop_zone, self.grid, self.no_match):
            self.pages.addWidget(page)
        center = QWidget()
        col = QVBoxLayout(center)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.search_bar)
        col.addLayout(banner_row)
        col.addWidget(self.pages, 1)

        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(center)
        right = QSplitter(Qt.Vertical)  # the photo's details above its caption
        right.addWidget(self.detail)
        right.addWidget(self.captions)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([220, 800, 300])
        self.setCentralWidget(self.splitter)

        bar = self.statusBar()
        self.status_label = QLabel()
        self.progress = QProgressBar(visible=False, maximumWidth=220, textVisible=False)
        self.rate_label = QLabel(visible=False)
        self.pause_button = QPushButton("Pause", visible=False, checkable=True)
        self.cancel_button = QPushButton("Cancel", visible=False)
        self.model_label = QLabel()
        bar.addWidget(self.status_label, 1)
        for w in (self.progress, self.rate_label, self.pause_button, self.cancel_button):
            bar.addPermanentWidget(w)
        bar.addPermanentWidget(self.model_label)
        self.labels = LabelActions(self)
        self._build_actions()

    def _build_actions(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&Library")
        self.add_folder_action = self._action(file_menu, "&Add folder…", self.add_folder_dialog, QKeySequence.Open)
        self._action(file_menu, "Files that could not be &indexed…", self.show_errors)
        self.export_xmp_action = self._action(file_menu, "&Export labels to XMP sidecars…", self.labels.export_xmp)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.Quit)
        edit = menu.addMenu("&Search")
        self.find_action = self._action(edit, "&Find", self.search_bar.focus_query, QKeySequence.Find)
        self._action(edit, "&Save this search", self.save_search)
        self._action(edit, "&Back to all photos", self.back, Qt.Key_Escape)
        view = menu.addMenu("&View")
        self._action(view, "&Larger thumbnails", lambda: self.zoom(1.25), QKeySequence.ZoomIn)
        self._action(view, "&Smaller thumbnails", lambda: self.zoom(0.8), QKeySequence.ZoomOut)
        tools = menu.addMenu("&Tools")
        self._action(tools, "&Label photos", self.controller.run_labels)
        self.review_action = self._action(tools, "&Review labels…", lambda: self.labels.review(), "Ctrl+R")
        self.label_editor_action = self._action(tools, "Label &editor…", lambda: self.labels.edit())
        self.ocr_action = self._action(tools, "Read &words in photos (OCR)", self.controller.run_ocr)
        self.tune_action = self._action(tools, "&Tune for my library…", self.tune_for_library)
        from clipdesk.gui.duplicates_view import open_duplicates, undo_last_trash

        self.duplicates_action = self._action(tools, "Find &duplicates…", lambda: open_duplicates(self))
        self.undo_trash_action = self._action(tools, "&Undo move to trash", lambda: undo_last_trash(self))
        self._action(tools, "&Model settings…", self.model_settings)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        c = self.controller
        c.model_state.connect(self._on_model_state)
        c.index_started.connect(self._on_index_started)
        c.index_finished.connect(self._on_index_finished)
        c.jobs.started.connect(self._on_job_started)
        c.jobs.progress.connect(self._on_job_progress)
        c.jobs.finished.connect(self._on_job_finished)
        c.jobs.failed.connect(self._on_job_failed)
        c.search_finished.connect(self._on_search_finished)
        c.search_failed.connect(self._on_search_failed)
        # Throttle, not debounce: indexing reports faster than the interval, and
        # a restarted timer would never fire until indexing ended.
        c.library_changed.connect(lambda: self._refresh_timer.isActive() or self._refresh_timer.start())
        self.search_bar.query_submitted.connect(self.run_query)
        self.search_bar.cleared.connect(self.back)
        self.grid.current_photo_changed.connect(self._show_details)
        self.grid.find_similar_requested.connect(self.find_similar)
        self.grid.open_requested.connect(self.open_paths)
        self.grid.reveal_requested.connect(self.reveal)
        self.grid.preview_requested.connect(self.preview)
        self.sidebar.folder_selected.connect(self._on_folder_selected)
        self.sidebar.label_selected.connect(self._on_label_selected)
        self.sidebar.saved_search_selected.connect(self._run_saved_search)
        self.sidebar.add_folder_requested.connect(self.add_folder_dialog)
        self.sidebar.remove_folder_requested.connect(self.remove_folder)
        self.sidebar.remove_saved_search_requested.connect(self._remove_saved_search)
        self.drop_zone.add_folder_requested.connect(self.add_folder_dialog)
        self.no_match.show_closest_requested.connect(self._show_closest)
        self.banner_button.clicked.connect(self.model_settings)
        self.pause_button.toggled.connect(self._toggle_pause)
        self.cancel_button.clicked.connect(self.controller.cancel)

    # -- library and indexing --------------------------------------------------------------

    def add_paths(self, paths: list[str]) -> None:
        """Add dropped or chosen folders/photos to the library and index them (checked on the IO lane)."""
        def usable() -> list[str]:
            return [p for p in paths if os.path.isdir(p) or (os.path.isfile(p) and is_supported(p))]

        def add(found: list[str]) -> None:
            if found:
                self.controller.add_roots(found)
            else:
                self.status_label.setText("Nothing to add: drop folders or photo files.")

        self.controller.read(usable, add, lambda exc: show_error(self, exc))

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a photo folder", str(Path.home()))
        if folder:
            self.add_paths([folder])

    def remove_folder(self, path: str) -> None:
        answer = QMessageBox.question(
            self, "Remove folder",
            f"Remove {path} from the library?\n\nOnly clipdesk's records go; the photos on disk are not touched.",
        )
        if answer == QMessageBox.Yes:
            library = self.controller.library
            self.controller.write(lambda: remove_folder(library, path),
                                  lambda n: (self.status_label.setText(f"Removed {path} ({n} photos) from the library."),
                                             self._refresh_library(), self.browse()),
                                  lambda exc: show_error(self, exc))

    def _on_index_started(self, roots: list) -> None:
        self._indexing_roots = list(roots)
        for root in roots:
            self.sidebar.set_folder_state(root, "indexing…")
        if self.pages.currentIndex() == PAGE_DROP:
            self.pages.setCurrentIndex(PAGE_GRID)
        self._refresh_timer.start()

    # -- the job in the status bar (any kind: index, labels, captions, export) ------------------

    def _on_job_started(self, job) -> None:
        for w in (self.progress, self.rate_label, self.pause_button, self.cancel_button):
            w.setVisible(True)
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(False)
        self.pause_button.setText("Pause")
        self.pause_button.blockSignals(False)
        self.progress.setRange(0, 0)
        self.rate_label.setText("")
        if job.kind == "index":
            what = ", ".join(os.path.basename(r) or r for r in job.roots)
            self.status_label.setText(f"Scanning {what}…")
        else:
            self.status_label.setText(f"{job.title}…")

    _VERBS = {"labelling": "Labelling", "captioning": "Captioning", "export": "Writing"}

    def _on_job_progress(self, job, st) -> None:
        verb = self._VERBS.get(st.phase, "Indexing" if job.kind == "index" else job.title.split(" ")[0])
        if job.kind == "tune":
            verb = f"Tuning ({st.phase})"  # views, image head (epochs), captions, writing tuned vectors, …
        if not self.controller.paused:
            if job.kind == "index" and st.phase == "indexing":
                names = ", ".join(os.path.basename(r) or r for r in self._indexing_roots) or "photos"
                self.status_label.setText(f"{verb} {names}…")
            elif job.kind != "index":
                self.status_label.setText(f"{job.title}…")
        if st.total:
            self.progress.setRange(0, st.total)
            self.progress.setValue(st.done)
        parts = [f"{verb} {st.done:,} / {st.total:,}"] if st.total else [f"Scanning… {st.done:,} files"]
        if st.rate and job.kind != "tune":
            parts.append(f"{st.rate:.1f} photos/s")
        if st.eta_s is not None:
            parts.append(f"ETA {int(st.eta_s) // 60}:{int(st.eta_s) % 60:02d}")
        if st.errors:
            parts.append(f"{st.errors} errors")
        self.rate_label.setText(" · ".join(parts))

    def _on_job_finished(self, job, report) -> None:
        self._hide_progress()
        if job.kind == "index":
            verb = "Stopped" if report.cancelled else "Indexed"
            text = (f"{verb}: {report.new} new, {report.changed} changed, {report.moved} moved, "
                    f"{report.missing} gone, {report.errors} errors.")
            if report.cancelled:
                text += " Add the folder again (or restart) to continue."
        elif job.kind == "labels":
            verb = "Stopped labelling" if report.cancelled else "Labelled"
            text = (f"{verb} {report.labelled:,} photos: {report.with_labels:,} got labels, "
                    f"{report.labelled - report.with_labels:,} matched none.")
        elif job.kind == "captions":
            verb = "Stopped" if report.cancelled else "Captioned"
            text = f"{verb}: {report.captioned:,} of {report.todo:,} photos."
        elif job.kind == "tune":
            text = summary(report)
        elif job.kind == "ocr":
            text = ocr_summary(report)
            self.detail.refresh_text()
        else:
            text = f"{job.title}: {'stopped' if job.token.cancelled else 'done'}."
        self.status_label.setText(text)
        if job.kind in ("labels", "captions"):
            self._refresh_library()

    def _on_index_finished(self, report) -> None:
        for root in self._indexing_roots:
            self.sidebar.set_folder_state(root, "")
        self._indexing_roots = []
        self._refresh_library()
        if self._last_request is None:
            self.browse()

    def _on_job_failed(self, job, exc) -> None:
        self._hide_progress()
        if job.kind == "index":
            for root in self._indexing_roots:
                self.sidebar.set_folder_state(root, "")
            self._indexing_roots = []
        if job.kind == "tune" and self._tune_dialog_open():
            return  # the dialog says why (too few photos, …)
        show_error(self, exc)

    def _hide_progress(self) -> None:
        for w in (self.progress, self.rate_label, self.pause_button, self.cancel_button):
            w.setVisible(False)

    def _toggle_pause(self, paused: bool) -> None:
        job = self.controller.current_job
        what = "Indexing" if job is None or job.kind == "index" else job.title
        if paused:
            self.controller.pause()
            self.pause_button.setText("Resume")
            self.status_label.setText(f"{what} paused.")
        else:
            self.controller.resume()
            self.pause_button.setText("Pause")
            self.status_label.setText(f"{what}…")

    def _refresh_library(self) -> None:
        """Folder and label counts, read on the IO lane (this runs every 700 ms while indexing)."""
        library, engine = self.controller.library, self.controller.engine
        # engine.key may import torch or hash a checkpoint the first time: read it on the IO lane as well.
        self.controller.read(lambda: (folder_summaries(library, engine.key), label_counts(library)),
                             self._show_library, lambda exc: show_error(self, exc))

    def _show_library(self, counts) -> None:
        folders, labels = counts
        self.sidebar.set_folders(folders)
        for root in self._indexing_roots:
            self.sidebar.set_folder_state(root, "indexing…")
        self.sidebar.set_labels(labels)
        self.search_bar.set_folders([f.path for f in folders])
        if not folders and not self.controller.indexing:
            self.pages.setCurrentIndex(PAGE_DROP)
        elif self._last_request is None:
            self._append_new_photos()

    # -- browsing and searching --------------------------------------------------------

    def browse(self, folder: str | None = None) -> None:
        """Show all photos (or one folder's), newest first."""
        if folder is not None:
            self._browse_folder = folder
        self._last_request = None
        self._browse_generation += 1  # results of any earlier browse are stale now
        generation = self._browse_generation
        folder, label = self._browse_folder or None, self._browse_label or None
        library = self.controller.library
        self._background(lambda: all_photos(library, folder, label), lambda rows: self._show_browse(rows, generation))

    def _show_browse(self, rows, generation: int) -> None:
        if self._last_request is not None or generation != self._browse_generation:
            return  # a search or another browse started meanwhile
        self.grid_model.set_items([ResultItem(r.id, r.path) for r in rows])
        if rows or self.controller.indexing:
            self.pages.setCurrentIndex(PAGE_GRID)
        n = len(rows)
        if not self.controller.indexing:
            self.status_label.setText(f"{n:,} photos" if n else "No photos yet.")

    def _append_new_photos(self) -> None:
        folder, label = self._browse_folder or None, self._browse_label or None
        generation = self._browse_generation
        library = self.controller.library

        def fetch():
            return all_photos(library, folder, label)

        def apply(rows):
            if self._last_request is not None or generation != self._browse_generation:
                return  # the view changed (a search, another folder or label) while this ran
            new = [ResultItem(r.id, r.path) for r in rows if self.grid_model.row_of(r.id) is None]
            if new:
                self.grid_model.append_items(new)
        self._background(fetch, apply)

    def run_query(self, query: QueryRequest, show_all: bool = False) -> None:
        try:
            terms = parse_text_query(query.text, require_positive=not query.images) if query.text.strip() else []
            terms += [self._image_term(p) for p in query.images]
        except ClipdeskError as exc:
            self.status_label.setText(str(exc))
            return
        if not terms:
            self.back()
            return
        self.detail.set_query(*highlight_query(terms))  # the matching words light up on the preview
        label = " + ".join([query.text.strip(), *(os.path.basename(p) for p in query.images)]).strip(" +")
        request = SearchRequest(terms, query.filters, k=self.settings.search_k, show_all=show_all, label=label,
                                sort=query.sort)
        self._last_request = request
        self._search_started = time.perf_counter()
        self._search_id = self.controller.search(request)
        self.status_label.setText(f"Searching for {label}…")

    @staticmethod
    def _image_term(path: str) -> Term:
        return Term("file", path)  # the controller makes it a photo term, off this thread, if it is in the library

    def _on_search_finished(self, request_id: int, result) -> None:
        if request_id != self._search_id or self._last_request is None:
            return  # an older query finished after a newer one started
        elapsed = time.perf_counter() - self._search_started
        self.grid_model.set_items([ResultItem(h.photo_id, h.path, h.score, h.relevant, why_brief(h.score, h.why),
                                              why_text(h.why)) for h in result.hits])
        label = self._last_request.label
        if result.hits:
            self.pages.setCurrentIndex(PAGE_GRID)
            weak = "" if not result.no_good_match else " (no good matches; showing the closest)"
            self.status_label.setText(f"{len(result.hits)} results for {label} in {elapsed:.2f} s{weak}")
            self.grid.setCurrentIndex(self.grid_model.index(0))
        else:
            self.no_match.set_query(label, result.considered)
            self.pages.setCurrentIndex(PAGE_NO_MATCH)
            self.status_label.setText(f"No good matches for {label}.")

    def _on_search_failed(self, request_id: int, exc) -> None:
        if request_id == self._search_id:
            if isinstance(exc, ClipdeskError):
                self.status_label.setText(str(exc))
            else:
                show_error(self, exc)

    def _show_closest(self) -> None:
        if self._last_request is not None:
            self.run_query(self.search_bar.request(), show_all=True)

    def find_similar(self, photo_id: int) -> None:
        row = self.grid_model.row_of(photo_id)
        if row is None:
            return
        self.search_bar.set_text("")  # "like this photo"; words can be added afterwards
        self.search_bar.set_image(self.grid_model.item(row).path)
        self.run_query(self.search_bar.request())

    def back(self) -> None:
        """Esc: leave a search (or a preview) and show the browse view again."""
        if self._last_request is not None or self.pages.currentIndex() == PAGE_NO_MATCH:
            self.detail.set_query([])
            self.search_bar.clear_image()
            self.browse()

    def save_search(self) -> None:
        text = self.search_bar.text().strip()
        if text:
            saved = [s for s in self.settings.saved_searches if s != text] + [text]
            self.settings.saved_searches = saved
            self.sidebar.set_saved_searches(saved)

    def _run_saved_search(self, text: str) -> None:
        self.search_bar.set_text(text)
        self.run_query(self.search_bar.request())

    def _remove_saved_search(self, text: str) -> None:
        saved = [s for s in self.settings.saved_searches if s != text]
        self.settings.saved_searches = saved
        self.sidebar.set_saved_searches(saved)

    def _on_folder_selected(self, path: str) -> None:
        self._browse_label = ""
        self.browse(path)

    def _on_label_selected(self, label: str) -> None:
        """Photos carrying a label (in the current folder), like ``search --label``."""
        self._browse_label = label
        self.browse()

    # -- the selected photo ---------------------------------------------------------------

    def _show_details(self, photo_id: int) -> None:
        self.captions.show_photo(photo_id if photo_id >= 0 else None)
        if photo_id < 0:
            self.detail.show_photo(None)
            return
        row = self.grid_model.row_of(photo_id)
        score = self.grid_model.item(row).score if row is not None else None
        self._details_seq += 1
        seq, library = self._details_seq, self.controller.library

        def show(details) -> None:
            if seq == self._details_seq:  # the selection has not moved on meanwhile
                self.detail.show_photo(details, score)

        self.controller.read(lambda: photo_details(library, photo_id), show, lambda exc: show_error(self, exc))

    def open_paths(self, paths: list) -> None:
        for path in paths:
            QDesktopServices.openUrl(file_url(path))  # exact bytes, even for non-UTF-8 names

    def reveal(self, path: str) -> None:
        QDesktopServices.openUrl(file_url(os.path.dirname(path)))

    def preview(self, photo_id: int) -> None:
        row = self.grid_model.row_of(photo_id)
        if row is not None:
            PreviewDialog(self.grid_model.item(row).path, self, tasks=self.controller.tasks).show()

    def zoom(self, factor: float) -> None:
        size = max(64, min(512, int(self.settings.thumb_size * factor)))
        self.settings.thumb_size = size
        self.grid.set_thumb_size(size)
        self.loader.set_size(size)

    # -- model ---------------------------------------------------------------------------

    def _on_model_state(self, state: str, message: str) -> None:
        self.model_label.setText({"loading": "Loading model…", "downloading": "Downloading model…",
                                  "ready": "Model ready", "missing": "Model weights missing"}.get(state, state))
        self.model_label.setToolTip(message)
        missing = state == "missing"
        self.banner.setText(message if missing else "")
        self.banner.setVisible(missing)
        self.banner_button.setVisible(missing)
        if state in ("loading", "downloading"):
            self.status_label.setText(message)

    def model_settings(self) -> None:
        dialog = ModelDialog(self, current=self.controller.engine.spec.name, device=self.controller.device,
                             precision=self.controller.precision, tasks=self.controller.tasks)
        if dialog.exec():
            try:
                self.controller.switch_model(dialog.selected_spec(), dialog.selected_device(),
                                             dialog.selected_precision())
            except ClipdeskError as exc:
                show_error(self, exc)
                return
            self.settings.model_spec = dialog.selected_spec()
            self.settings.model_device = dialog.selected_device()
            self.settings.model_precision = dialog.selected_precision()

    def tune_for_library(self) -> TuneDialog:
        """Tools ▸ Tune for my library…: non-modal, one at a time, deleted on close."""
        if self._tune_dialog_open():
            self.tune_dialog.raise_()
            self.tune_dialog.activateWindow()
            return self.tune_dialog
        self.tune_dialog = TuneDialog(self.controller, self)
        self.tune_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.tune_dialog.show()
        return self.tune_dialog

    def _tune_dialog_open(self) -> bool:
        return self.tune_dialog is not None and shiboken6.isValid(self.tune_dialog) and self.tune_dialog.isVisible()

    def show_errors(self) -> None:
        ErrorsDialog(self.controller.library, self, tasks=self.controller.tasks).exec()

    # -- drag and drop ---------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    # -- helpers ------------------------------------------------------------------------

    def _background(self, fn, on_result) -> None:
        self.controller.read(fn, on_result, lambda exc: show_error(self, exc))

    def _restore(self) -> None:
        if self.settings.geometry:
            self.restoreGeometry(self.settings.geometry)
        else:
            self.resize(1280, 800)
        if self.settings.splitter:
            self.splitter.restoreState(self.settings.splitter)
        self.sidebar.set_saved_searches(self.settings.saved_searches)

    def closeEvent(self, event) -> None:
        self.settings.geometry = self.saveGeometry()
        self.settings.splitter = self.splitter.saveState()
        super().closeEvent(event)
