"""One editor per setting type, built from the setting's declaration.

`editor_for(spec)` picks the widget from `FieldSpec.type`: a spin box with
the declared bounds and unit suffix for numbers, a check box for booleans,
a combo box of the declared choices, a line edit limited to the declared
length for text, and `SecretEditor` for secrets. Every editor reports what
the person did through one signal, `edited(value, problem)`, where
`problem` says why the typed text is not a value the setting accepts; it
never decides anything else. `set_value` loads a value without emitting.

Secrets: the current value is never placed in an input that could be sent
back. The editor shows a mask; "Show" reveals the value read from the
backend in a read-only field, only to someone allowed to read it; a new
value is typed after "Replace", into an empty field.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from console.models.settingspec import MASK, FieldSpec

INT_LIMIT = 2**31 - 1
FLOAT_DECIMALS = 3


class SettingEditor(QWidget):
    """Base: `edited(value, problem)`, `set_value`, `set_writable`."""

    edited = Signal(object, object)
    """The person changed the value: (value or None, problem or None)."""
    withdrawn = Signal()
    """The person took their edit back (a secret's "Keep current")."""

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self._loading = False
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    def set_value(self, value: Any, *, is_set: bool = True, masked: bool = False) -> None:
        """Show `value` as loaded from the backend; emits nothing."""
        self._loading = True
        try:
            self._show(value, is_set=is_set, masked=masked)
        finally:
            self._loading = False

    def _show(self, value: Any, *, is_set: bool, masked: bool) -> None:
        raise NotImplementedError

    def end_edit(self) -> None:
        """Leave any editing mode (the draft was saved or discarded); most editors have none."""

    def _emit(self, value: Any, problem: str | None = None) -> None:
        if not self._loading:
            self.edited.emit(value, problem)

    def set_writable(self, writable: bool, reason: str = "") -> None:
        """Enable the inputs, or disable them with `reason` as their tooltip."""
        for child in self.inputs():
            child.setEnabled(writable)
            child.setToolTip("" if writable else reason)
        self.setToolTip("" if writable else reason)

    def inputs(self) -> list[QWidget]:
        """The widgets a person types or clicks into (tests drive them)."""
        raise NotImplementedError


class NumberEditor(SettingEditor):
    """A spin box held to the declared bounds, the unit as suffix.

    Typing beyond the maximum is refused by the spin box; text that is no
    value yet (empty, below the minimum) is reported as a problem while it
    is there, so the panel can say so next to the field and block saving.
    """

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.box: QSpinBox | QDoubleSpinBox
        if spec.type == "int":
            box = QSpinBox(self)
            box.setRange(
                int(spec.minimum) if spec.minimum is not None else -INT_LIMIT,
                int(spec.maximum) if spec.maximum is not None else INT_LIMIT,
            )
            self.box = box
        else:
            double = QDoubleSpinBox(self)
            double.setDecimals(FLOAT_DECIMALS)
            double.setRange(
                spec.minimum if spec.minimum is not None else -1e12,
                spec.maximum if spec.maximum is not None else 1e12,
            )
            self.box = double
        if spec.unit:
            self.box.setSuffix(f" {spec.unit}")
        self.box.setAccelerated(True)
        # Text that is no value (empty, below the minimum) goes back to the last valid
        # value when the person leaves the field, never to a bound they did not type.
        self.box.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToPreviousValue)
        self.box.setMinimumWidth(140)
        self.box.setToolTip(spec.bounds())
        # Typed text (even no value yet) arrives through the line edit; the spin box's own
        # corrections (arrows, the fix-up on leaving) change the text with its signals
        # blocked, so they are read from valueChanged and editingFinished.
        self.box.lineEdit().textChanged.connect(self._changed)
        self.box.valueChanged.connect(self._changed)
        self.box.editingFinished.connect(self._changed)
        self._layout.addWidget(self.box)
        self._layout.addStretch(1)

    def _show(self, value: Any, *, is_set: bool, masked: bool) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(self.box, QSpinBox):
                self.box.setValue(int(value))
            else:
                self.box.setValue(float(value))

    def _changed(self, *_: object) -> None:
        value, problem = self.spec.parse(self.box.cleanText())
        self._emit(value, problem)

    def inputs(self) -> list[QWidget]:
        return [self.box]


class BoolEditor(SettingEditor):
    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.box = QCheckBox("Enabled", self)
        self.box.toggled.connect(lambda checked: self._emit(bool(checked)))
        self._layout.addWidget(self.box)
        self._layout.addStretch(1)

    def _show(self, value: Any, *, is_set: bool, masked: bool) -> None:
        self.box.setChecked(bool(value))

    def inputs(self) -> list[QWidget]:
        return [self.box]


class ChoiceEditor(SettingEditor):
    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.box = QComboBox(self)
        self.box.addItems(list(spec.choices))
        self.box.setMinimumWidth(140)
        self.box.currentTextChanged.connect(self._emit)
        self._layout.addWidget(self.box)
        self._layout.addStretch(1)

    def _show(self, value: Any, *, is_set: bool, masked: bool) -> None:
        self.box.setCurrentIndex(self.box.findText(str(value)))

    def inputs(self) -> list[QWidget]:
        return [self.box]


class TextEditor(SettingEditor):
    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.line = QLineEdit(self)
        self.line.setMaxLength(spec.max_length)
        self.line.setClearButtonEnabled(True)
        self.line.textChanged.connect(self._emit)
        self._layout.addWidget(self.line)

    def _show(self, value: Any, *, is_set: bool, masked: bool) -> None:
        self.line.setText("" if value is None else str(value))

    def inputs(self) -> list[QWidget]:
        return [self.line]


class SecretEditor(SettingEditor):
    """A mask, "Show" (read-only reveal) and "Replace…" (type a new value); see the module doc.

    "Replace…" emits `edited("")` at once: the draft is then a new (empty)
    value, which saving would write; "Keep current" withdraws it.
    """

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self._current: str | None = None
        self._is_set = False
        self._masked = True
        self._may_write = True
        self._write_reason = ""
        self.replacing = False
        self.line = QLineEdit(self)
        self.line.setMaxLength(spec.max_length)
        self.line.setEchoMode(QLineEdit.EchoMode.Password)
        self.line.textEdited.connect(self._emit)
        self.show_button = QPushButton("Show", self)
        self.show_button.setCheckable(True)
        self.show_button.toggled.connect(self._reveal)
        self.replace_button = QPushButton("Replace…", self)
        self.replace_button.clicked.connect(self._toggle_replace)
        self._layout.addWidget(self.line, 1)
        self._layout.addWidget(self.show_button)
        self._layout.addWidget(self.replace_button)
        self._idle()

    def _show(self, value: Any, *, is_set: bool, masked: bool) -> None:
        self._current = None if masked or value is None else str(value)
        self._is_set = is_set if masked or value is None else value != ""
        self._masked = masked
        if not self.replacing:
            self._idle()

    def _idle(self) -> None:
        """Not replacing: a read-only mask, or the value while "Show" is down."""
        self.replacing = False
        self.replace_button.setText("Replace…")
        self.line.setReadOnly(True)
        self.line.clear()
        self.line.setEchoMode(QLineEdit.EchoMode.Password)
        self.line.setPlaceholderText(MASK + " (set)" if self._is_set else "(not set)")
        self.show_button.blockSignals(True)
        self.show_button.setChecked(False)
        self.show_button.blockSignals(False)
        self._enable()

    def _toggle_replace(self) -> None:
        if self.replacing:
            self._idle()
            if not self._loading:
                self.withdrawn.emit()
            return
        self.replacing = True
        self.replace_button.setText("Keep current")
        self.line.setReadOnly(False)
        self.line.clear()
        self.line.setEchoMode(QLineEdit.EchoMode.Password)
        self.line.setPlaceholderText("New value (empty clears it)")
        self.show_button.setChecked(False)
        self._enable()
        self.line.setFocus()
        self._emit("")

    def end_edit(self) -> None:
        if self.replacing:
            self._idle()

    def _reveal(self, shown: bool) -> None:
        """Show the typed value, or (not replacing) the current one in the read-only field."""
        self.line.setEchoMode(QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)
        if not self.replacing:
            self.line.setText((self._current or "") if shown else "")

    def _enable(self) -> None:
        can_show = self.replacing or (not self._masked and self._is_set)
        self.show_button.setEnabled(can_show)
        self.show_button.setToolTip(
            "" if can_show else
            ("Your role cannot read secrets (needs settings:secrets)." if self._masked
             else "No value is set.")
        )  # fmt: skip
        self.replace_button.setEnabled(self._may_write)
        self.replace_button.setToolTip("" if self._may_write else self._write_reason)
        self.line.setEnabled(self._may_write or not self._masked)

    def set_writable(self, writable: bool, reason: str = "") -> None:
        self._may_write = writable
        self._write_reason = reason
        self.setToolTip("" if writable else reason)
        self.line.setToolTip("" if writable else reason)
        if not writable and self.replacing:
            self._idle()
        self._enable()

    def inputs(self) -> list[QWidget]:
        return [self.line, self.replace_button]


EDITORS: dict[str, type[SettingEditor]] = {
    "int": NumberEditor,
    "float": NumberEditor,
    "bool": BoolEditor,
    "choice": ChoiceEditor,
    "str": TextEditor,
    "secret": SecretEditor,
}


def editor_for(spec: FieldSpec, parent: QWidget | None = None) -> SettingEditor:
    """The editor of `spec.type`; an unknown type is edited as text."""
    return EDITORS.get(spec.type, TextEditor)(spec, parent)
