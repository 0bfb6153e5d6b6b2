"""Time BCL's RandAugment alone: torchvision's per-image PIL ``RandAugment(num_ops=k)`` against
the batched one (``sdclr.data.augment.randaugment``) in its all-ops and grouped schedules, for
k = 1 and 2 with every drawn op applied, and print the table (images per second;
``sdclr.benchmark`` times it).

One CPU thread by default, e.g. ``python scripts/bench_randaugment.py --rounds 5``.
"""

import argparse
import dataclasses

import torch

from sdclr.benchmark import BenchConfig, bench_randaugment, randaugment_lines, write_results
from sdclr.device import pick_device

defaults = BenchConfig()
parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--batch-size", type=int, default=defaults.augment_batch_size)
parser.add_argument("--image-size", type=int, default=defaults.image_size)
parser.add_argument("--batches", type=int, default=defaults.augment_batches, help="per round")
parser.add_argument("--rounds", type=int, default=defaults.augment_rounds)
parser.add_argument("--pil-images", type=int, default=defaults.pil_images, help="per round")
parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
parser.add_argument("--json", default=None, help="also write the results to this JSON file")
args = parser.parse_args()
torch.set_num_threads(args.threads)
config = BenchConfig(
    image_size=args.image_size,
    augment_batch_size=args.batch_size,
    augment_batches=args.batches,
    augment_rounds=args.rounds,
    pil_images=args.pil_images,
    device=args.device,
)
device = pick_device(config.device)
results = bench_randaugment(config, device)
print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
print("\n".join(randaugment_lines(results, dataclasses.asdict(config))))
if args.json:
    write_results(results, args.json)
