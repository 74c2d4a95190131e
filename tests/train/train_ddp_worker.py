"""One training step of the toy model, run by ``torchrun`` (2 CPU processes, gloo) in tests.

Usage: ``torchrun --nproc_per_node 2 train_ddp_worker.py OUT_DIR STEPS``; rank 0 saves the
weights to ``OUT_DIR/weights.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from train_toys import ToyNet, make_trainer

from pipeline.train.distributed import init_distributed, shutdown


def main() -> None:
    out, steps = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    env = init_distributed("cpu")
    try:
        tr = make_trainer(out, env=env, model=lambda: ToyNet(bn=False), batch_size=8, steps=steps)
        tr.run()
        if env.is_main:
            torch.save(tr.base.state_dict(), out / "weights.pt")
    finally:
        shutdown(env)


if __name__ == "__main__":
    main()
