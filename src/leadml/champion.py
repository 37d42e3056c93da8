"""The champion on disk and what it promises its callers.

The registry alias `champion` is the truth; the export folder follows it, so that scoring
and the service can run without a tracking store. Each registered name has its own folder:

    models/champion -> .champion-v7-4242-x1y2   the path everyone reads (a relative symlink)
    models/.champion-v7-4242-x1y2/              scorer.json + booster.txt of version 7
    models/.lock                                held while the alias moves and the link switches
    models/<name>/champion -> ...               the same, for a model trained with --name

A new version is built completely in a folder of its own beside the current one and the
link is switched with one rename, so a reader sees the old export or the new, never half of
one; a relative link keeps working where the folder is mounted elsewhere (the container).
Whatever a killed promotion leaves behind (an unlinked version folder, a temporary link, the
`champion.old` and `.export-*` of earlier leadml versions) is removed under the lock by the
next command (`tracking.reconcile`).

The input contract is what callers of a champion rely on: the kind of data (CRM leads with
events, or rows of a flat export), the id, the outcome, and each field with its type. A
challenger may read fewer fields than the champion; a different kind, id or outcome, a field
callers do not send yet, or a field under another type would turn their requests into 422s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from leadml.config import DEFAULT_MODEL_NAME, Settings
from leadml.files import fsync_dir
from leadml.model import LeadScorer

LINK = "champion"
LOCK = ".lock"
_LEFTOVER = re.compile(r"^(\.champion-|\.export-|champion\.old$)")


def export_root(settings: Settings) -> Path:
    """The folder holding a registered name's champion link, versions and lock."""
    root = Path(os.path.abspath(settings.export_dir))
    return root if settings.model_name == DEFAULT_MODEL_NAME else root / settings.model_name


def champion_path(settings: Settings) -> Path:
    """Where the exported champion is read: `models/champion` (`models/<name>/champion`)."""
    return export_root(settings) / LINK


def is_champion_path(settings: Settings, path: str | Path) -> bool:
    return Path(os.path.abspath(path)) == champion_path(settings)


def exported(settings: Settings) -> tuple[str, str] | None:
    """(name, version) of the registry version the export holds, or None (no export, or one
    that does not say where it came from)."""
    try:
        card = json.loads((champion_path(settings) / "scorer.json").read_text())["card"]
        return str(card["registry"]["name"]), str(card["registry"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def linked_folder(root: Path) -> Path | None:
    """The version folder the champion link points at (None without a link)."""
    link = root / LINK
    if not link.is_symlink():
        return None
    return root / os.readlink(link)


def leftovers(root: Path) -> list[Path]:
    """What killed or earlier promotions left in `root`: everything but the link, its folder
    and the lock. Only safe to remove under the lock (`locked`)."""
    if not root.is_dir():
        return []
    current = linked_folder(root)
    return sorted(
        p for p in root.iterdir() if _LEFTOVER.match(p.name) and p != current and p.name != LINK
    )


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def new_folder(root: Path, version: str) -> Path:
    """An empty folder for one version's export, named after it and this process."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=root, prefix=f".champion-v{version}-{os.getpid()}-"))


def sync_tree(folder: Path) -> None:
    """Flush every file of a freshly written folder to disk before anything points at it."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(folder)


def switch(root: Path, folder: Path) -> Path | None:
    """Point the champion link at `folder` with one rename; returns what it replaced (the
    previous version folder), for the caller to remove once the switch is done."""
    link = root / LINK
    previous = linked_folder(root)
    tmp = root / f".champion-link-{os.getpid()}"
    remove(tmp)
    os.symlink(folder.name, tmp)
    if link.is_dir() and not link.is_symlink():
        # an export written before version folders: a directory cannot be swapped for a link
        # in one rename, so it moves aside first; a kill in between leaves no export, which
        # the next command re-creates from the registry alias
        previous = root / f".champion-replaced-{os.getpid()}"
        remove(previous)
        os.replace(link, previous)
    os.replace(tmp, link)
    fsync_dir(root)
    return previous if previous != folder else None


_held = threading.local()


@contextlib.contextmanager
def locked(settings: Settings) -> Iterator[None]:
    """An exclusive lock on a name's export folder, across processes (flock) and threads,
    held while the champion alias moves and the export follows.

    Re-entrant in one thread, so a promotion can hold it while it calls functions that take
    it too. The kernel drops it when the holder dies, even by `kill -9`.
    """
    root = export_root(settings)
    key = str(root)
    held: set[str] = _held.__dict__.setdefault("roots", set())
    if key in held:
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(key)
        yield
    finally:
        held.discard(key)
        os.close(fd)


# ---- the input contract ------------------------------------------------------------------


def contract(scorer: LeadScorer) -> dict:
    """What a model's callers send: data kind, id, outcome, and each field with its type."""
    spec = scorer.spec
    if spec.kind == "crm":
        fields = {f: "crm" for f in spec.input_fields() if f != "lead_id"} | {"events": "crm"}
        return {
            "kind": "crm",
            "id": "lead_id",
            "target": scorer.card.get("target"),
            "fields": fields,
        }
    return {
        "kind": spec.kind,
        "id": None if spec.id_column == "row_id" else spec.id_column,
        "target": scorer.card.get("target"),
        "fields": {c.name: _CALLER_TYPE.get(c.kind, c.kind) for c in spec.columns},
    }


_CALLER_TYPE = {"numeric": "a number", "binary": "yes/no", "category": "text", "title": "text"}


_KIND_TEXT = {"crm": "CRM leads with events", "flat": "rows of a flat export"}


def contract_change(champion: dict, challenger: dict) -> str | None:
    """How the challenger's input differs in a way the champion's callers would notice, in
    one phrase; None when every request the champion takes still works."""
    if challenger["kind"] != champion["kind"]:
        return (
            f"it reads {_KIND_TEXT.get(challenger['kind'], challenger['kind'])}, the champion "
            f"{_KIND_TEXT.get(champion['kind'], champion['kind'])}"
        )
    if challenger["id"] != champion["id"]:
        return f"its lead id is {challenger['id']!r}, the champion's {champion['id']!r}"
    if challenger["target"] != champion["target"]:
        return f"it predicts {challenger['target']!r}, the champion {champion['target']!r}"
    new = [f for f in challenger["fields"] if f not in champion["fields"]]
    if new:
        shown = ", ".join(map(repr, new[:5])) + (
            f" and {len(new) - 5} more" if len(new) > 5 else ""
        )
        return f"it reads fields the champion's callers do not send: {shown}"
    for f, kind in challenger["fields"].items():
        if champion["fields"][f] != kind:
            return f"field {f!r} takes {kind} where the champion took {champion['fields'][f]}"
    return None
