"""`ChartCard`: a titled `LiveChart` with its own export menu, for pages of several charts.

A page that shows several charts of one subject (a host) shares one range
and one pause between them, so the charts go without their own toolbars and
each card keeps only what is per chart: its title and its export (PNG of
the plot, CSV of its visible data). The save dialog is opened, never
executed, so the event loop keeps running while it is up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from console.widgets.chart import LiveChart, RangePreset, ValueFormat


def file_stem(*parts: str) -> str:
    """A file name from words: 'web-1 CPU per core' -> 'web-1-cpu-per-core'."""
    text = "-".join(part for part in parts if part)
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "chart"


class ChartCard(QFrame):
    """A title row (title, export menu) over a toolbar-less `LiveChart`."""

    def __init__(
        self,
        title: str,
        value_format: ValueFormat,
        *,
        preset: RangePreset = RangePreset.H1,
        refresh_ms: int = 50,
        phase_ms: int = 0,
        parent: QWidget | None = None,
    ) -> None:
        """`refresh_ms` and `phase_ms` go to the chart: see `LiveChart`."""
        super().__init__(parent)
        self.setObjectName("ChartCard")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.title = QLabel(title, self)
        self.title.setObjectName("ChartTitle")
        self.chart = LiveChart(
            value_format,
            preset=preset,
            toolbar=False,
            refresh_ms=refresh_ms,
            phase_ms=phase_ms,
            parent=self,
        )
        self.chart.setMinimumHeight(200)
        self.export_button = QToolButton(self)
        self.export_button.setObjectName("export")
        self.export_button.setText("Export")
        self.export_button.setAutoRaise(True)
        self.export_button.setToolTip(f"Save the {title} chart as an image or its data as CSV")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        self.png_action = menu.addAction("PNG image…", self._ask_png)
        self.csv_action = menu.addAction("CSV data…", self._ask_csv)
        self.export_button.setMenu(menu)
        self.file_stem = file_stem(title)
        """The default file name, without extension (the owner may name the subject)."""

        header = QHBoxLayout()
        header.setContentsMargins(6, 0, 2, 0)
        header.addWidget(self.title)
        header.addStretch(1)
        header.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.chart, 1)

    def _ask_png(self) -> None:
        self._ask("Export chart", "png", "PNG image (*.png)", self._save_png)

    def _ask_csv(self) -> None:
        self._ask("Export data", "csv", "CSV (*.csv)", self._save_csv)

    def _ask(self, caption: str, suffix: str, filters: str, save: Callable[[str], None]) -> None:
        dialog = QFileDialog(self, caption, f"{self.file_stem}.{suffix}", filters)
        dialog.setObjectName(f"export-{suffix}-dialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(suffix)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(save)
        dialog.open()

    def _save_png(self, path: str) -> None:
        try:
            self.chart.export_png(path)
        except OSError as error:
            self._failed(path, error)

    def _save_csv(self, path: str) -> None:
        try:
            self.chart.export_csv(path)
        except OSError as error:
            self._failed(path, error)

    def _failed(self, path: str, error: OSError) -> None:
        """A full disk or a read-only folder is the person's to fix: say so, no bug report."""
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Quarterdeck",
            f"Could not save {Path(path).name}.",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setInformativeText(error.strerror or str(error))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
