"""One training configuration, shared by ``train_all.py``, background jobs and tests.

Defaults come from the model's registered :class:`~fer_core.models.Recipe`; anything given
explicitly overrides them. The whole config is stored in the run folder and in every checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..models import Recipe, get_recipe


@dataclass
class TrainConfig:
    model: str
    model_args: dict[str, Any] = field(default_factory=dict)  # keyword arguments for create_model
    # --- the recipe (see fer_core.models.Recipe for the meaning of each) ---
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: int = 1
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    epochs: int = 40
    batch_size: int = 64  # the global batch: under torchrun, shared out between the ranks
    augment: str = "standard"
    label_smoothing: float = 0.0
    class_weights: bool = False
    grad_clip: float = 0.0
    ema_decay: float = 0.0
    early_stop_patience: int = 0
    # --- the run ---
    data: str | None = None  # FER2013 folder or csv; None: FER2013_DIR
    out: str = "runs"  # parent of the run folder
    run_name: str = ""  # default: the model name
    budget_minutes: float = 0.0  # stop at the epoch boundary before this wall-clock budget runs out; 0: none
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CPU / AMP on CUDA
    threads: int = 0  # CPU threads; 0: all cores
    max_train_samples: int = 0  # train on a class-stratified subset of this size (quick runs); 0: all
    eval_batch_size: int = 512
    sync_bn: bool = False  # under torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm)
    # --- fine-tuning (background jobs, fer_core.jobs) ---
    init_from: str = ""  # start from this checkpoint's weights (.safetensors) instead of a random init
    freeze_backbone: bool = False  # train only the classifier head (see fer_core.train.loop.head_modules)

    @classmethod
    def from_recipe(cls, model: str, **overrides: Any) -> TrainConfig:
        recipe = dataclasses.asdict(get_recipe(model))
        recipe.pop("notes")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - fields
        if unknown:
            raise TypeError(f"unknown training option(s): {sorted(unknown)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(model=model, **{**recipe, **given})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def name(self) -> str:
        return self.run_name or self.model


RECIPE_FIELDS = [f.name for f in dataclasses.fields(Recipe) if f.name != "notes"]
