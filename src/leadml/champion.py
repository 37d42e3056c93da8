"""The champion on disk: where each registered name's export lives.

The registry alias `champion` is the truth; the export folder follows it, so that scoring
and the service can run without a tracking store. Each registered name has its own:

    models/champion             the default name (leadml)
    models/<name>/champion      a model trained with --name, e.g. one per data source
"""

from __future__ import annotations

import os
from pathlib import Path

from leadml.config import DEFAULT_MODEL_NAME, Settings

LINK = "champion"


def export_root(settings: Settings) -> Path:
    """The folder holding a registered name's exported champion."""
    root = Path(os.path.abspath(settings.export_dir))
    return root if settings.model_name == DEFAULT_MODEL_NAME else root / settings.model_name


def champion_path(settings: Settings) -> Path:
    """Where the exported champion is read: `models/champion` (`models/<name>/champion`)."""
    return export_root(settings) / LINK


def is_champion_path(settings: Settings, path: str | Path) -> bool:
    return Path(os.path.abspath(path)) == champion_path(settings)
