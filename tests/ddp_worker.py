"""One process of a multi-process test (started by tests/test_distributed.py, or by torchrun).

    python tests/ddp_worker.py steps DATA OUT N     N trainer steps; each rank saves its weights
    python tests/ddp_worker.py train DATA OUT N     imagegen.train for N steps; ranks other than 0
                                                    record every file they write under OUT

Weights go to ``OUT/../weights-rank{R}.safetensors``; the files a rank wrote under OUT go to
``OUT/../writes-rank{R}.json`` (recorded with a Python audit hook, so any write through
``open``, ``os.replace``/``os.rename`` or ``os.mkdir`` is seen).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import tiny_config  # noqa: E402

from imagegen.data import load_dataset  # noqa: E402
from imagegen.distributed import init, shutdown  # noqa: E402
from imagegen.training import Trainer, train  # noqa: E402


def _record_writes(out: Path, seen: list[str]) -> None:
    root = str(out.resolve())

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode = args[0], args[1]
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            if isinstance(mode, int) or mode is None:  # os.open: flags are in args[2]
                writing = bool(args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and isinstance(path, (str, os.PathLike)) and str(Path(path).resolve()).startswith(root):
                seen.append(f"open {path}")
        elif event in ("os.rename", "os.mkdir", "os.remove"):
            path = args[1] if event == "os.rename" else args[0]
            if isinstance(path, (str, os.PathLike)) and str(Path(path).resolve()).startswith(root):
                seen.append(f"{event} {path}")

    sys.addaudithook(hook)


def main() -> None:
    mode, data, out, steps = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    report = out.parent
    if mode == "steps":
        w = init(torch.device("cpu"))
        ds = load_dataset(data)
        tr = Trainer(tiny_config(data, steps=steps, batch_shards=1, warmup_fraction=0.0), out, ds.images, ds.labels,
                     world=w)
        for _ in range(steps):
            tr.train_step()
        save_file({k: v.contiguous() for k, v in tr.model.state_dict().items()},
                  str(report / f"weights-rank{rank}.safetensors"))
        shutdown()
    elif mode == "train":
        seen: list[str] = []
        if rank != 0:
            _record_writes(out, seen)
        cfg = tiny_config(data, steps=steps, batch_shards=1)
        cfg = replace(cfg, train=replace(cfg.train, sample_every_seconds=0.0))  # a grid every step
        r = train(data, out, config=cfg, progress=False, device="cpu")
        shutdown()
        (report / f"writes-rank{rank}.json").write_text(json.dumps({"writes": seen, "summary": r}, default=str))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
