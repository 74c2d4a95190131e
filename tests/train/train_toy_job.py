"""A toy training job run as a subprocess by the kill -9 resume test.

Usage: ``python train_toy_job.py OUT_DIR STEPS SLEEP_S [--resume]``; saves the final weights to
``OUT_DIR/weights.pt``. ``SLEEP_S`` slows each step so the test can kill it mid-run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from train_toys import ToyNet, make_trainer


def main() -> None:
    out, steps, sleep_s = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    torch.set_num_threads(1)
    tr = make_trainer(
        out, model=lambda: ToyNet(dropout=0.1), steps=steps, ema={"enabled": True, "decay": 0.9}
    )
    step = tr.train_step

    def slow_step(batch: dict[str, Any]) -> dict[str, float] | None:
        time.sleep(sleep_s)
        return step(batch)

    tr.train_step = slow_step  # type: ignore[method-assign]
    tr.run(resume="--resume" in sys.argv)
    torch.save(tr.base.state_dict(), out / "weights.pt")


if __name__ == "__main__":
    main()
