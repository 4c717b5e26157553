"""Metrics to JSONL (always) and TensorBoard (when installed), under veRL-style names, on rank 0."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricLogger:
    def __init__(self, out: str | Path, tensorboard: bool = True, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(out) / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:  # optional: torch's SummaryWriter needs the tensorboard package
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(out) / "tensorboard"))
            except ImportError:
                self.writer = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: _number(v) for k, v in metrics.items()}
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **clean}) + "\n")
        if self.writer is not None:
            for key, value in clean.items():
                if isinstance(value, float) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _number(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    path = Path(out) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
