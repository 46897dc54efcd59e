"""FSDP2 step time of every rule against torch's AdamW under FSDP2, side by side in one run.

    python -m sandbox.benchmarks.distributed [--world 2] [--repeats 15] [--rules adamp,sgdp]

Spawns ``world`` processes (gloo on CPU, one intra-op thread each, 127.0.0.1), builds the same
small conv + BN / linear + LayerNorm net (float32) once per contender, each wrapped by
``fully_shard`` with its own optimizer, and warms each up by two steps. The baseline is
``torch.optim.AdamW`` as a user gets it on CPU (its per-tensor loop; foreach is torch's default on
CUDA only); its foreach form is shown too. Then, for each repeat,
the contenders run in a shuffled order (the same order on every rank), one training step each on
the same micro-batch: forward + backward, then ``opt.step()`` timed on its own (wall clock, and
the CPU time of the rank's process: on a shared machine the wall clock of a step that waits in
collectives also holds the other processes' time slices). A step's time is the slowest rank's. Ratios are taken within a repeat (contender / torch AdamW of the same repeat),
so drifts of the machine's load cancel; the table gives medians over repeats (and the quartiles of
the optimizer-step ratio). Collectives per ``step()`` are counted on an extra, untimed step by
``CommDebugMode`` (c10d calls and DTensor's implicit collectives) and by the optimizer itself
(``last_collectives``).

Goal (issue 14): at most 2 collectives per step beyond torch's own, and adamp's optimizer step at
most 1.5× torch AdamW's.
"""
from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import sys
import time
from datetime import timedelta

import torch
from torch import nn

BASELINE = "torch.AdamW"


class BenchNet(nn.Module):
    """conv + BN blocks and a linear + LayerNorm head (~1.3M parameters)."""

    def __init__(self):
        super().__init__()
        chans = [3, 32, 64, 64, 128]
        layers = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers[:-1])  # 32 → 4 after three pools
        self.fc = nn.Linear(128 * 4 * 4, 512)
        self.ln = nn.LayerNorm(512)
        self.head = nn.Linear(512, 10)

    def forward(self, x):
        return self.head(torch.relu(self.ln(self.fc(self.features(x).flatten(1)))))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FOREACH = "torch.AdamW(foreach)"
# values for hyperparameters without a default (the papers give none)
REQUIRED_VALUES = {"lr": 1e-3, "batch_size": 32, "normalized": True}


def _optimizer(name: str, params, nonfinite: str = "raise"):
    import sandbox
    from sandbox.optim.hyper import REQUIRED

    if name in (BASELINE, FOREACH):  # torch's default on CPU is its per-tensor loop
        return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2, foreach=name == FOREACH)
    d = sandbox.info(name).defaults
    kw = {k: REQUIRED_VALUES[k] for k, v in d.items() if v is REQUIRED}
    for k, v in (("lr", 1e-3), ("weight_decay", 1e-2), ("momentum", 0.9)):
        if k in d:
            kw[k] = v
    return sandbox.create(name, params, nonfinite=nonfinite, **kw)


def _worker(rank: int, world: int, port: int, names: list, repeats: int, out_path: str,
            nonfinite: str = "raise") -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.debug import CommDebugMode

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=300))
    g = torch.Generator().manual_seed(rank + 1)
    x, y = torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)

    def train_step(m, opt):
        opt.zero_grad(set_to_none=False)
        t0 = time.perf_counter()
        nn.functional.cross_entropy(m(x), y).backward()
        t1, c1 = time.perf_counter(), time.process_time()
        opt.step()
        t2, c2 = time.perf_counter(), time.process_time()
        return t2 - t0, t2 - t1, c2 - c1

    runs, failed = {}, {}
    for name in names:
        torch.manual_seed(0)
        m = BenchNet()
        fully_shard(m)
        try:
            opt = _optimizer(name, m.parameters(), nonfinite)
            for _ in range(2):
                train_step(m, opt)
            opt.zero_grad(set_to_none=False)  # the backward's collectives are FSDP2's: count the step apart
            nn.functional.cross_entropy(m(x), y).backward()
            with CommDebugMode() as cm:
                opt.step()
            runs[name] = (m, opt, cm.get_total_counts(), getattr(opt, "last_collectives", 0))
        except Exception as e:  # noqa: BLE001 - reported in the table
            failed[name] = f"{type(e).__name__}: {e}".splitlines()[0][:120]
        dist.barrier()
    rng = random.Random(0)
    times = {n: [] for n in runs}
    for _ in range(repeats):
        order = list(runs)
        rng.shuffle(order)  # the same order on every rank (same seed)
        for n in order:
            m, opt, _, _ = runs[n]
            dist.barrier()
            times[n].append(train_step(m, opt))
    # the slowest rank's time of each step
    mine = torch.tensor([[t for triple in times[n] for t in triple] for n in runs], dtype=torch.float64)
    every = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(every, mine)
    worst = torch.stack(every).amax(dim=0)
    if rank == 0:
        import json

        rows = {n: {"total": worst[i, 0::3].tolist(), "step": worst[i, 1::3].tolist(),
                    "cpu": worst[i, 2::3].tolist(),
                    "collectives": runs[n][2], "own": runs[n][3]} for i, n in enumerate(runs)}
        with open(out_path, "w") as f:
            json.dump({"rows": rows, "failed": failed,
                       "params": sum(p.numel() for p in BenchNet().parameters())}, f)
    dist.destroy_process_group()


def main(argv=None) -> dict:
    import sandbox

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--rules", default="", help="comma-separated rules (default: every registered rule)")
    ap.add_argument("--nonfinite", default="raise", choices=("raise", "skip", "ignore"),
                    help="the rules' nonfinite option ('ignore': no agreement on finite gradients, "
                         "one round fewer for rules whose first request follows a writing stage)")
    args = ap.parse_args(argv)
    names = [BASELINE, FOREACH] + (args.rules.split(",") if args.rules else sandbox.available())
    import tempfile

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        mp.spawn(_worker, args=(args.world, _free_port(), names, args.repeats, out, args.nonfinite),
                 nprocs=args.world)
        import json

        res = json.loads(open(out).read())
    rows = res["rows"]
    base_total, base_step = rows[BASELINE]["total"], rows[BASELINE]["step"]
    base_coll = rows[BASELINE]["collectives"]
    print(f"FSDP2 (fully_shard), world size {args.world}, gloo on CPU, 1 thread per rank, float32, "
          f"{res['params'] / 1e6:.2f}M parameters, {args.repeats} repeats, nonfinite={args.nonfinite!r}; "
          f"time = slowest rank; "
          f"ratios to {BASELINE} of the same repeat, medians [quartiles]")
    print(f"{'rule':<22}{'step ms':>9}{'step ratio':>22}{'cpu ratio':>11}{'train-step ratio':>18}"
          f"{'collectives/step':>18}")
    base_cpu = rows[BASELINE]["cpu"]
    for n, r in rows.items():
        ratios = sorted(a / b for a, b in zip(r["step"], base_step))
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        tot = statistics.median(a / b for a, b in zip(r["total"], base_total))
        cpu = statistics.median(a / b for a, b in zip(r["cpu"], base_cpu))
        extra = r["collectives"] - base_coll
        print(f"{n:<22}{statistics.median(r['step']) * 1e3:>9.2f}{q[1]:>10.2f} [{q[0]:.2f}, {q[2]:.2f}]"
              f"{cpu:>11.2f}{tot:>18.2f}{r['collectives']:>10} ({extra:+d})")
    for n, why in res["failed"].items():
        print(f"{n:<22} failed: {why}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
