"""``python -m fer_core.jobs run JOB_DIR`` (what the runner launches), ``list``, ``cancel JOB_ID`` and
``retry JOB_ID`` (a failed or cancelled job again, resumed from its last finished epoch when it has one)."""

from __future__ import annotations

import argparse
import sys

from . import JobError, JobRunner, run_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_core.jobs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run one job folder (the runner does this)").add_argument("job_dir")
    sub.add_parser("list", help="list jobs (also recovers dead ones and starts a queued one)")
    sub.add_parser("cancel", help="cancel a queued or running job").add_argument("job_id")
    sub.add_parser("retry", help="queue a failed or cancelled job again (resumes it)").add_argument("job_id")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_job(args.job_dir)
    runner = JobRunner()
    if args.command == "cancel":
        print(runner.cancel(args.job_id).state)
        return 0
    if args.command == "retry":
        try:
            print(runner.retry(args.job_id).state)
        except JobError as exc:
            parser.error(str(exc))
        return 0
    for job in runner.list():
        print(f"{job.id}\t{job.state}\t{job.spec.kind}\t{job.error or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
