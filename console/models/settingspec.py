"""A setting's declaration as the console reads it, and the rules drawn from it.

The backend declares every setting once (type, bounds, choices, unit,
secret, restart) and sends the declaration with each `SettingView` as its
`spec` dict. Editors, inline validation, value formatting and the history's
differences are all derived from that data here, so the configuration
panel holds no per-setting knowledge and a new setting needs no console
change. No Qt here: these are plain rules, tested without a window.

Validation is the backend's own `SettingSpec.problem` (through
`console.client.rules`), built from the declaration the server sent, so
what the panel blocks inline is what the service would refuse, in its
words; the service still validates every write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from console.client.rules import SettingSpec
from console.client.types import SettingView

if TYPE_CHECKING:
    from console.client.rules import SettingType

MASK = "••••••••"
"""How a secret's value is drawn: never the value, only that there is one."""
DEFAULT_MAX_LENGTH = 1000
ACRONYMS = {"smtp": "SMTP", "api": "API", "tls": "TLS", "url": "URL", "id": "ID"}
"""Words of a key written in capitals in its title."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    key: str
    type: str
    """One of int, float, bool, str, choice, secret."""
    description: str
    category: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    restart_required: bool = False
    max_length: int = DEFAULT_MAX_LENGTH

    @classmethod
    def of(cls, view: SettingView) -> FieldSpec:
        """Read the declaration the backend sent with `view` (unknown keys are ignored)."""
        spec = view.spec
        minimum, maximum = spec.get("minimum"), spec.get("maximum")
        return cls(
            key=view.key,
            type=str(spec.get("type", "str")),
            description=str(spec.get("description", "")),
            category=str(spec.get("category", "") or "General"),
            default=spec.get("default"),
            minimum=float(minimum) if minimum is not None else None,
            maximum=float(maximum) if maximum is not None else None,
            choices=tuple(str(choice) for choice in spec.get("choices", ())),
            unit=str(spec.get("unit", "") or ""),
            restart_required=bool(spec.get("restart_required", False)),
            max_length=int(spec.get("max_length", DEFAULT_MAX_LENGTH)),
        )

    @property
    def secret(self) -> bool:
        return self.type == "secret"

    @property
    def numeric(self) -> bool:
        return self.type in ("int", "float")

    @property
    def title(self) -> str:
        """'auth.lockout_minutes' -> 'Lockout minutes': the key's last part, readable."""
        words = [ACRONYMS.get(word, word) for word in self.key.rsplit(".", 1)[-1].split("_")]
        name = " ".join(words)
        return name[:1].upper() + name[1:]

    # -- validation -------------------------------------------------------------------

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this setting: the backend's own rule, same words."""
        rule = SettingSpec(
            self.key,
            cast("SettingType", self.type),
            self.default,
            self.description,
            self.category,
            minimum=self.minimum,
            maximum=self.maximum,
            choices=self.choices,
            unit=self.unit,
            restart_required=self.restart_required,
            max_length=self.max_length,
        )
        return rule.problem(value)

    def parse(self, text: str) -> tuple[Any, str | None]:
        """A number typed as text: (value, None), or (None, what is wrong with it)."""
        cleaned = text.strip()
        if self.unit and cleaned.endswith(self.unit):
            cleaned = cleaned[: -len(self.unit)].strip()
        if not cleaned:
            return None, "a value is required"
        try:
            value: Any = int(cleaned) if self.type == "int" else float(cleaned.replace(",", "."))
        except ValueError:
            return None, f"expected {'an integer' if self.type == 'int' else 'a number'}"
        return value, self.problem(value)

    # -- showing ----------------------------------------------------------------------

    def format(self, value: Any, *, is_set: bool = True, masked: bool = False) -> str:
        """`value` as a person reads it in a table: unit attached, secrets never shown."""
        if self.secret:
            has_value = is_set if masked or value is None else value != ""
            return MASK if has_value else "(not set)"
        if masked:
            return MASK
        if value is None:
            return "—"
        if self.type == "bool":
            return "On" if value else "Off"
        if self.numeric:
            text = f"{value:g}" if isinstance(value, float) else str(value)
            return f"{text} {self.unit}" if self.unit else text
        if value == "":
            return "(empty)"
        return str(value)

    def bounds(self) -> str:
        """'1 to 3600 s': the range shown beside a numeric editor."""
        if not self.numeric or (self.minimum is None and self.maximum is None):
            return ""
        low = f"{self.minimum:g}" if self.minimum is not None else "…"
        high = f"{self.maximum:g}" if self.maximum is not None else "…"
        return f"{low} to {high} {self.unit}".rstrip()

    def difference(self, old: Any, new: Any, *, masked: bool = False) -> str:
        """How `new` (the current value) differs from `old` (a version), in one sentence."""
        if self.secret or masked:
            if old == new:
                return "The secret is the same as the current one."
            return "The secret differs from the current one (secret values are not shown)."
        if old == new:
            return f"Same as the current value ({self.format(new)})."
        change = f"{self.format(old)} → {self.format(new)}"
        if self.numeric and isinstance(old, int | float) and isinstance(new, int | float):
            delta = new - old
            step = f"{delta:+g}" + (f" {self.unit}" if self.unit else "")
            return f"Current value differs: {change} ({step})."
        return f"Current value differs: {change}."


def when(timestamp: float | None) -> str:
    """Epoch seconds as local date and time, or '—' for a setting never written."""
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
