"""Background training jobs: fine-tuning and sweeps, one at a time per machine, state on disk; and the
user's own labelled faces to fine-tune on (an uploaded zip, or My faces saved from the Upload/Webcam pages).

See :mod:`fer_core.jobs.runner` for the design (files, locks, processes, recovery).
"""

from .my_faces import (
    check_faces,
    delete_class,
    delete_face,
    face_counts,
    face_source,
    list_faces,
    my_faces_root,
    save_face,
)
from .runner import ACTIVE, DONE, Job, JobError, JobRunner, JobSpec, jobs_root
from .uploads import MIN_PER_CLASS, UploadError, UploadSummary, extract_faces_zip
from .user_models import delete_user_model, rename_user_model
from .worker import run_job

__all__ = [
    "ACTIVE",
    "DONE",
    "Job",
    "JobError",
    "JobRunner",
    "JobSpec",
    "MIN_PER_CLASS",
    "UploadError",
    "UploadSummary",
    "check_faces",
    "delete_class",
    "delete_face",
    "delete_user_model",
    "extract_faces_zip",
    "face_counts",
    "face_source",
    "jobs_root",
    "list_faces",
    "my_faces_root",
    "rename_user_model",
    "run_job",
    "save_face",
    "sweep_specs",
]


def sweep_specs(
    name: str,
    model: str,
    optimizers: list[str],
    lrs: list[float],
    schedules: list[str],
    max_cells: int = 16,
    **common: object,
) -> list[JobSpec]:
    """The VGGNet paper's tuning study as a small grid: one plain training job per
    optimizer x learning rate x schedule, named ``<name>-<opt>-lr<lr>-<schedule>``; none is registered
    as a user model (the Training runs page compares them)."""
    cells = [(o, lr, s) for o in optimizers for lr in lrs for s in schedules]
    if not cells:
        raise JobError("the grid is empty: choose at least one optimizer, learning rate and schedule")
    if len(cells) > max_cells:
        raise JobError(f"{len(cells)} runs in the grid: at most {max_cells}")
    specs = [
        JobSpec(
            name=f"{name}-{o}-lr{lr:g}-{s}",
            kind="sweep",
            model=model,
            optimizer=o,
            lr=lr,
            schedule=s,
            register=False,
            **common,  # type: ignore[arg-type]
        )
        for o, lr, s in cells
    ]
    for spec in specs:
        spec.validate()
    return specs
