"""Queue the VGGNet paper's tuning study (optimizers x learning rates x schedules) as background jobs.

Each cell is a short, plain training run (``<jobs dir>/<job>/run/``) that the Training runs page
overlays, tabulates and draws on its parallel-coordinates view. The jobs run one at a time, in their
own processes, whether or not this script or the dashboard stays open; ``--wait`` waits for them.

    python scripts/sweep.py --data ~/fer2013 --model vggnet --optimizers adamw,sgd --lrs 1e-3,1e-2 \\
        --schedules cosine,plateau --epochs 3 --max-train-samples 4000 --wait
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.jobs import DONE, JobError, JobRunner, sweep_specs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="", help="FER2013 folder or csv (default: FER2013_DIR)")
    p.add_argument("--model", default="vggnet")
    p.add_argument("--name", default="sweep", help="prefix of the job names")
    p.add_argument("--optimizers", default="adamw,sgd")
    p.add_argument("--lrs", default="1e-3,1e-2")
    p.add_argument("--schedules", default="cosine")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-train-samples", type=int, default=2000, help="stratified subset; 0: all of Training")
    p.add_argument("--jobs-dir", default=None, help="default: FER_JOBS_DIR or runs/jobs")
    p.add_argument("--wait", action="store_true", help="wait until every run has ended")
    args = p.parse_args(argv)
    try:
        lrs = [float(v) for v in args.lrs.split(",")]
    except ValueError:
        p.error(f"--lrs: {args.lrs!r} is not a comma-separated list of numbers (e.g. 1e-3,1e-2)")
    runner = JobRunner(args.jobs_dir)
    try:
        specs = sweep_specs(
            args.name,
            args.model,
            args.optimizers.split(","),
            lrs,
            args.schedules.split(","),
            epochs=args.epochs,
            batch_size=args.batch_size,
            max_train_samples=args.max_train_samples,
            data_path=args.data,
        )
        jobs = [runner.submit(spec) for spec in specs]
    except JobError as exc:
        p.error(str(exc))
    for job in jobs:
        print(f"{job.id}\t{job.state}")
    if args.wait:
        jobs = [runner.wait(j.id, timeout=7 * 24 * 3600, poll_s=2.0) for j in jobs]
        for job in jobs:
            print(f"{job.id}\t{job.state}\t{job.error or ''}")
        return int(any(j.state != "finished" for j in jobs if j.state in DONE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
