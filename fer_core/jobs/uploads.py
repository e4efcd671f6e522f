"""The user's own labelled faces, uploaded as a zip of class folders, extracted safely.

A zip from a browser is untrusted: entries may try to escape the target folder (``../``, absolute
paths), be symlinks, or expand to far more than they weigh (zip bombs). Everything is checked against
the central directory before a byte is written, and each entry is copied with a hard size cap, so a
lying header cannot make extraction write more than the limit.
"""

from __future__ import annotations

import io
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..data.faceset import count
from ..data.loaders import ALIASES, IMAGE_EXTENSIONS

MAX_TOTAL_BYTES = 200 * 1024 * 1024  # uncompressed
MAX_FILES = 20_000
MIN_PER_CLASS = 5  # at least one held out for the comparison and a few to train on


class UploadError(ValueError):
    """A zip we refuse; the message says what is wrong and how to fix it."""


@dataclass
class UploadSummary:
    counts: dict[str, int]  # our class name -> images
    unknown_classes: dict[str, int] = field(default_factory=dict)  # folder name -> images skipped
    skipped_files: int = 0  # non-image files

    def lines(self) -> list[str]:
        out = [", ".join(f"{c}: {n}" for c, n in self.counts.items())]
        for name, n in sorted(self.unknown_classes.items()):
            out.append(f"skipped folder '{name}' ({count(n, 'image')}): not a class we know")
        if self.skipped_files:
            out.append(f"skipped {count(self.skipped_files, 'file')} that are not images")
        return out


def check_class_counts(
    counts: dict[str, int],
    min_per_class: int = MIN_PER_CLASS,
    noun: str = "images",
    fix: str = "leave a class out entirely if you have none",
    empty: str = "no images",
) -> None:
    """Raise :class:`UploadError` unless the labelled faces can be fine-tuned on and compared.

    Each class present needs ``min_per_class`` faces (one or more held out, a few to train on), and at
    least two classes must be present: trained on one expression alone, a model learns to answer it for
    every face and scores 100% on a held-out part that holds nothing else."""
    present = {c: n for c, n in counts.items() if n > 0}
    if not present:
        raise UploadError(empty)
    few = {c: n for c, n in present.items() if n < min_per_class}
    if few:
        raise UploadError(
            f"too few {noun} in {', '.join(f'{c} ({n})' for c, n in sorted(few.items()))}: "
            f"at least {min_per_class} per class ({fix})"
        )
    if len(present) < 2:
        (only,) = present
        raise UploadError(
            f"{noun} of one expression only ({only}): fine-tuning needs at least two, or the model learns to "
            f"answer {only} for every face"
        )


def extract_faces_zip(
    source: str | Path | bytes,
    dest: str | Path,
    min_per_class: int = MIN_PER_CLASS,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
) -> UploadSummary:
    """Check and extract ``source`` (a path or the zip's bytes) into ``dest/<class>/<file>``.

    Accepts ``<class>/<image>`` or one wrapping folder ``<top>/<class>/<image>``; class folder names
    go through the same aliases as :func:`fer_core.data.load_class_folders` (anger -> angry ...).
    Raises :class:`UploadError` for: not a zip, unsafe entries (absolute, ``..``, symlinks), too big,
    no images, no class we know, a class with fewer than ``min_per_class`` images, or one class only.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadError(f"not a zip file ({exc})") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for info in zf.infolist():
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise UploadError(f"unsafe path in the zip: {info.filename!r} (absolute or with '..')")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UploadError(f"the zip holds a symbolic link ({info.filename!r}); links are not accepted")
        if len(infos) > max_files:
            raise UploadError(f"{len(infos)} files in the zip: at most {max_files:,}")
        total = sum(i.file_size for i in infos)
        if total > max_total_bytes:
            raise UploadError(f"the zip expands to {total / 1e6:.0f} MB: at most {max_total_bytes / 1e6:.0f} MB")
        # paths without macOS clutter; strip one wrapping folder when every entry sits in it
        entries = [
            (i, PurePosixPath(i.filename.replace("\\", "/")).parts)
            for i in infos
            if "__MACOSX" not in i.filename and not PurePosixPath(i.filename).name.startswith(".")
        ]
        tops = {p[0] for _, p in entries if len(p) > 1}
        if len(tops) == 1 and all(len(p) >= 3 for _, p in entries) and next(iter(tops)).lower() not in ALIASES:
            entries = [(i, p[1:]) for i, p in entries]
        summary = UploadSummary(counts={})
        plan: list[tuple[zipfile.ZipInfo, str, str]] = []
        for info, parts in entries:
            if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
                summary.skipped_files += 1
                continue
            if len(parts) != 2:
                summary.unknown_classes[parts[0] if len(parts) > 2 else "(no folder)"] = (
                    summary.unknown_classes.get(parts[0] if len(parts) > 2 else "(no folder)", 0) + 1
                )
                continue
            cls = ALIASES.get(parts[0].lower())
            if cls is None:
                summary.unknown_classes[parts[0]] = summary.unknown_classes.get(parts[0], 0) + 1
                continue
            summary.counts[cls] = summary.counts.get(cls, 0) + 1
            plan.append((info, cls, f"{len(plan):06d}{PurePosixPath(parts[-1]).suffix.lower()}"))
        if not plan:
            found = ", ".join(sorted(summary.unknown_classes))
            unknown = f" (folders found: {found})" if found else ""
            raise UploadError(
                "no usable images: the zip needs one folder per expression (angry, disgust, fear, happy, sad, "
                f"surprise, neutral) holding image files{unknown}"
            )
        check_class_counts(summary.counts, min_per_class)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)  # the user's faces: readable by this user only
        written = 0
        for info, cls, fname in plan:
            target = dest / cls / fname
            target.parent.mkdir(exist_ok=True, mode=0o700)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > max_total_bytes:  # a header that lied about the size
                        out.close()
                        shutil.rmtree(dest, ignore_errors=True)
                        raise UploadError(f"the zip expands to more than {max_total_bytes / 1e6:.0f} MB")
                    out.write(chunk)
    return summary
