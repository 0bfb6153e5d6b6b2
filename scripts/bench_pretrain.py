"""Time the pipeline's own pretraining loop (SimCLR, SDCLR; BCL-D and SDCLR + difficult pairs
with ``--methods``) against a reference-style pipeline on this machine's device, count the
operators one step dispatches, and time the augmentation alone (``sdclr.benchmark``).

The defaults are the paper's settings (ResNet-18 CIFAR stem, batch 512, 32 px, 2,000 epochs
of CIFAR-10-LT's 11,165 images). On a CPU, shrink them, e.g.
``--width 0.125 --batch-size 64 --dataset-size 512 --steps 3 --warmup 1 --loop-epochs 1``.
Every method at the paper's settings, compiled and then eager::

    python scripts/bench_pretrain.py --methods simclr sdclr bcl_d sdclr_de --json compiled.json
    python scripts/bench_pretrain.py --methods simclr sdclr bcl_d sdclr_de --compile false \
        --no-reference --json eager.json
"""

import argparse

import torch

from sdclr.benchmark import METHODS, BenchConfig, format_results, run_benchmark, write_results

defaults = BenchConfig()
parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
parser.add_argument("--image-size", type=int, default=defaults.image_size)
parser.add_argument("--width", type=float, default=defaults.width, help="ResNet-18 width")
parser.add_argument("--steps", type=int, default=defaults.steps, help="reference: timed steps")
parser.add_argument(
    "--warmup", type=int, default=defaults.warmup, help="reference: untimed steps first"
)
parser.add_argument(
    "--loop-epochs", type=int, default=defaults.loop_epochs, help="timed epochs of the loop"
)
parser.add_argument(
    "--loop-warmup-epochs",
    type=int,
    default=defaults.loop_warmup_epochs,
    help="epochs of the loop timed apart first (compilation)",
)
parser.add_argument(
    "--methods",
    nargs="+",
    choices=METHODS,
    default=list(defaults.methods),
    help="bcl_d, sdclr_de: the paper configs' BCL-D and SDCLR + difficult pairs (loop only)",
)
parser.add_argument("--no-reference", action="store_true", help="skip the reference pipeline")
parser.add_argument("--workers", type=int, default=None, help="reference DataLoader workers")
parser.add_argument("--dataset-size", type=int, default=defaults.dataset_size)
parser.add_argument("--epochs", type=int, default=defaults.epochs, help="for the projection")
parser.add_argument(
    "--precision", choices=["auto", "bf16", "tf32", "fp32"], default=defaults.precision
)
parser.add_argument("--channels-last", choices=["auto", "true", "false"], default="auto")
parser.add_argument(
    "--compile",
    choices=["auto", "true", "false"],
    default="auto",
    help="as pretrain.compile (auto: on CUDA)",
)
parser.add_argument(
    "--count-compiled",
    action="store_true",
    help="also count the operators of a compiled step where the loop runs eager (CPU)",
)
parser.add_argument(
    "--augment-batch-size", type=int, default=defaults.augment_batch_size, help="augmentation alone"
)
parser.add_argument("--augment-batches", type=int, default=defaults.augment_batches)
parser.add_argument("--augment-rounds", type=int, default=defaults.augment_rounds)
parser.add_argument("--pil-images", type=int, default=defaults.pil_images)
parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
parser.add_argument("--json", default=None, help="also write the results to this JSON file")
args = parser.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)
channels_last = {"auto": "auto", "true": True, "false": False}[args.channels_last]
config = BenchConfig(
    batch_size=args.batch_size,
    image_size=args.image_size,
    width=args.width,
    steps=args.steps,
    warmup=args.warmup,
    methods=tuple(args.methods),
    reference=not args.no_reference,
    workers=args.workers,
    dataset_size=args.dataset_size,
    epochs=args.epochs,
    precision=args.precision,
    channels_last=channels_last,
    compile=args.compile,
    loop_epochs=args.loop_epochs,
    loop_warmup_epochs=args.loop_warmup_epochs,
    count_compiled=args.count_compiled,
    augment_batch_size=args.augment_batch_size,
    augment_batches=args.augment_batches,
    augment_rounds=args.augment_rounds,
    pil_images=args.pil_images,
    device=args.device,
)
results = run_benchmark(config)
print(format_results(results), flush=True)
if args.json:
    write_results(results, args.json)
