"""Run under torchrun by tests/test_distributed.py: train every run a JSON file lists, in one
launch, and have rank 0 write the metrics of each (a script with its own process group, as a
user's would be).

    torchrun --standalone --nproc_per_node 2 tests/distributed_runs.py RUNS.json RESULTS.json
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from rnnkit.train import task_config, train


def main(runs_file: str, results_file: str) -> None:
    dist.init_process_group("gloo")  # rnnkit's train() joins the group it finds
    results = {}
    for name, settings in json.loads(Path(runs_file).read_text()).items():
        settings = dict(settings)
        results[name] = train(task_config(settings.pop("task"), **settings), progress=False)
    if dist.get_rank() == 0:
        with open(results_file, "w") as handle:
            json.dump(results, handle)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
