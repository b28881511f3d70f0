"""The outcome of an operation on many LoRAs: which succeeded, and why each other one failed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BulkResult:
    done: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    batch: str | None = None  # trash batch, for undo

    def summary(self, verb: str) -> str:
        text = f"{verb} {len(self.done)} LoRA{'s' if len(self.done) != 1 else ''}"
        if self.errors:
            text += f"; {len(self.errors)} failed: " + "; ".join(list(self.errors.values())[:5])
        return text
