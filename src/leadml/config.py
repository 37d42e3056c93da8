"""Settings (where things live) and training config (what to build).

`Environment` is the one place environment variables are read (`LEADML_*`,
`MLFLOW_TRACKING_URI`, `PROMETHEUS_MULTIPROC_DIR`). `Settings`, built from it, says where
the tracking store, the registry name and the exported model are; `ServeSettings` how the
service runs. `TrainConfig` comes from a YAML file and says how to build features, fit the
model and cut bands. All are plain typed objects; nothing here touches the disk until a
function is called.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadml.errors import ConfigError

DEFAULT_MODEL_NAME = "leadml"
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_model_name(name: str) -> str:
    """A registered model name leadml can also use as a folder name (`models/<name>/`)."""
    if not _MODEL_NAME.fullmatch(name) or name == "champion":
        raise ConfigError(
            f"model name {name!r}: use letters, digits, '-' and '_' (up to 64, not 'champion'), "
            "e.g. --name xeducation"
        )
    return name


class Environment(BaseSettings):
    """Every environment variable leadml reads, read here and nowhere else.

    Raw text (None when unset), typed by the settings built from it, so that an empty
    variable means what it always meant (unset, except LEADML_EXPERIMENT) and a bad value is
    reported with the variable's name. Read once per process edge: `create_app()` and each
    CLI command build one and pass the typed settings on.
    """

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="ignore")

    # where: Settings
    home: str | None = Field(default=None, validation_alias="LEADML_HOME")
    tracking_uri: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    artifact_root: str | None = Field(default=None, validation_alias="LEADML_ARTIFACT_ROOT")
    model_name: str | None = Field(default=None, validation_alias="LEADML_MODEL_NAME")
    experiment: str = Field(default="leadml", validation_alias="LEADML_EXPERIMENT")
    export_dir: str | None = Field(default=None, validation_alias="LEADML_EXPORT_DIR")
    # how the service runs: ServeSettings
    model_uri: str | None = Field(default=None, validation_alias="LEADML_MODEL_URI")
    api_key: str | None = Field(default=None, validation_alias="LEADML_API_KEY")
    admin_key: str | None = Field(default=None, validation_alias="LEADML_ADMIN_KEY")
    reload_seconds: str | None = Field(default=None, validation_alias="LEADML_RELOAD_SECONDS")
    max_batch: str | None = Field(default=None, validation_alias="LEADML_MAX_BATCH")
    max_body_mb: str | None = Field(default=None, validation_alias="LEADML_MAX_BODY_MB")
    workers: str | None = Field(default=None, validation_alias="LEADML_WORKERS")
    # set by `leadml serve` for its workers: a file whose touch tells siblings to reload, and
    # prometheus_client's folder for the metrics of all workers
    reload_token: str | None = Field(default=None, validation_alias="LEADML_RELOAD_TOKEN")
    metrics_dir: str | None = Field(default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR")
    # the CLI: a running Dask cluster to train and score on (as Dask itself names it)
    dask_scheduler: str | None = Field(default=None, validation_alias="DASK_SCHEDULER_ADDRESS")
    # the score store (issue 16): a SQLAlchemy URL (default: sqlite under the home) and how
    # many days of scores `leadml store prune` keeps
    store_url: str | None = Field(default=None, validation_alias="LEADML_STORE_URL")
    store_retention_days: str | None = Field(
        default=None, validation_alias="LEADML_STORE_RETENTION_DAYS"
    )
    # band-change webhooks: comma-separated receiver URLs and the HMAC-SHA256 secret
    webhook_urls: str | None = Field(default=None, validation_alias="LEADML_WEBHOOK_URLS")
    webhook_secret: str | None = Field(default=None, validation_alias="LEADML_WEBHOOK_SECRET")


class Settings(BaseModel):
    """Where leadml reads and writes: tracking store, registry name, exported model."""

    model_config = ConfigDict(frozen=True)

    home: Path
    tracking_uri: str
    artifact_root: str
    model_name: str = DEFAULT_MODEL_NAME
    experiment: str = "leadml"
    export_dir: Path

    @classmethod
    def from_env(cls, home: Path | str | None = None, env: Environment | None = None) -> Settings:
        """Embedded defaults under LEADML_HOME (or the working directory).

        The tracking store is a sqlite file in `<home>/mlruns/` so a fresh machine needs no
        server; `MLFLOW_TRACKING_URI` points elsewhere when a team has one.
        """
        env = env or Environment()
        root = Path(home or env.home or Path.cwd()).resolve()
        store = root / "mlruns"
        return cls(
            home=root,
            tracking_uri=env.tracking_uri or f"sqlite:///{store / 'mlflow.db'}",
            artifact_root=env.artifact_root or (store / "artifacts").as_uri(),
            model_name=check_model_name(env.model_name or DEFAULT_MODEL_NAME),
            experiment=env.experiment,
            export_dir=Path(env.export_dir or root / "models"),
        )

    def store_exists(self) -> bool:
        """False when the tracking store is the embedded sqlite file and it was never created
        (an export-only deployment: nothing to check the export against)."""
        if self.tracking_uri.startswith("sqlite:///"):
            return Path(self.tracking_uri.removeprefix("sqlite:///")).exists()
        return True

    def for_model(self, name: str | None) -> Settings:
        """These settings for another registered name (`--name`): its own aliases and export."""
        if name is None:
            return self
        return self.model_copy(update={"model_name": check_model_name(name)})


class ServeSettings(BaseModel):
    """How the scoring service runs; from `LEADML_*` environment variables (see serve/README.md)."""

    model_config = ConfigDict(frozen=True)

    model_uri: str | None = None  # None: the registry's champion alias
    api_key: str | None = None
    admin_key: str | None = None  # the workspace's saving forms (band lines) need it
    reload_seconds: float = Field(30.0, ge=0)  # 0: no polling, only POST /admin/reload
    max_batch: int = Field(10_000, ge=1)
    max_body_mb: float = Field(64.0, gt=0)
    workers: int = Field(2, ge=1)  # `leadml serve`'s default for --workers
    reload_token: str | None = None  # several workers: touched to make all of them reload
    metrics_dir: str | None = None  # several workers: /metrics adds up the files of all

    @classmethod
    def from_env(cls, env: Environment | None = None) -> ServeSettings:
        env = env or Environment()
        values = {
            "model_uri": env.model_uri or None,
            "api_key": env.api_key or None,
            "admin_key": env.admin_key or None,
            "reload_seconds": env.reload_seconds,
            "max_batch": env.max_batch,
            "max_body_mb": env.max_body_mb,
            "workers": env.workers,
            "reload_token": env.reload_token,
            "metrics_dir": env.metrics_dir or None,
        }
        return _from_values(cls, values)


def _from_values(cls, values: dict):
    """Settings from the environment's raw text; a bad value is named by its variable."""
    try:
        return cls.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = [
            f"{Environment.model_fields[str(e['loc'][0])].validation_alias}={e['input']!r}: "
            f"{e['msg'].lower()}"
            for e in exc.errors()
        ]
        raise ConfigError(f"invalid setting in the environment: {'; '.join(problems)}") from None


class StoreSettings(BaseModel):
    """The score store and its band-change webhooks (issue 16).

    `url` is a SQLAlchemy URL: by default a SQLite file `<home>/store.db`, nothing to start;
    `LEADML_STORE_URL=postgresql+psycopg://...` for a team's server, `off` to keep nothing.
    Field names are the Environment's, so a bad value is reported with its variable.
    """

    model_config = ConfigDict(frozen=True)

    store_url: str | None = None  # None: the store is off
    store_retention_days: int | None = Field(None, ge=1)  # None: keep everything
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = None

    @classmethod
    def from_env(cls, home: Path, env: Environment | None = None) -> StoreSettings:
        env = env or Environment()
        url = (env.store_url or "").strip() or f"sqlite:///{Path(home) / 'store.db'}"
        urls = tuple(u.strip() for u in (env.webhook_urls or "").split(",") if u.strip())
        values = {
            "store_url": None if url.lower() == "off" else url,
            "store_retention_days": env.store_retention_days or None,
            "webhook_urls": urls,
            "webhook_secret": env.webhook_secret or None,
        }
        settings = _from_values(cls, values)
        if settings.webhook_urls and not settings.webhook_secret:
            raise ConfigError(
                "LEADML_WEBHOOK_URLS is set but LEADML_WEBHOOK_SECRET is not: set a secret so "
                "receivers can check each event's signature"
            )
        return settings


class FeatureConfig(BaseModel):
    """How engagement is summarised as of the cut-off."""

    model_config = ConfigDict(extra="forbid")

    windows_days: list[int] = Field(default=[7, 30, 90], min_length=1)
    observation_days: int = Field(
        default=180, gt=0, description="events older than this before the cut-off are ignored"
    )
    half_life_days: float = Field(
        default=14.0, gt=0, description="half-life of the decayed engagement"
    )
    velocity_days: int = Field(
        default=14, gt=0, description="recent window compared with the one before it"
    )


class LabelConfig(BaseModel):
    """Which leads are learned from and what counts as a conversion."""

    model_config = ConfigDict(extra="forbid")

    as_of: str | None = Field(
        default=None, description="cut-off; default: latest timestamp in the data minus the horizon"
    )
    horizon_days: int = Field(
        default=30,
        gt=0,
        description="conversion must happen within this many days after the cut-off",
    )
    snapshots: int | Literal["auto"] = Field(
        default="auto",
        description="cut-offs to learn from, one every snapshot_every_days back from as_of; auto: 4-8 depending on volume",
    )
    snapshot_every_days: int | None = Field(
        default=None, gt=0, description="default: the horizon, so labels never overlap"
    )


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid: float = Field(
        default=0.1, gt=0, lt=0.5, description="early-stopping slice (share of all rows)"
    )
    calibration: float = Field(default=0.2, gt=0, lt=0.5)
    test: float = Field(default=0.2, gt=0, lt=0.5)
    date_column: str | None = Field(
        default=None, description="flat files: creation date for a time split"
    )
    crossfit_folds: int = Field(
        default=5,
        ge=0,
        description="no time order: cross-fit over the non-test rows (0 = fixed slices)",
    )
    crossfit_max_rows: int = Field(
        default=300_000,
        ge=0,
        description="above this, fixed slices (cross-fitting costs folds+1 fits)",
    )
    seed: int = 7

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitConfig:
        if self.valid + self.calibration + self.test >= 0.8:
            raise ValueError(
                "valid + calibration + test must leave at least 20 % of rows for training"
            )
        return self


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(default=0.03, gt=0, le=1)
    num_leaves: int = Field(default=15, ge=2)
    min_child_samples: int = Field(default=40, ge=1)
    max_rounds: int = Field(default=2000, ge=1)
    early_stopping_rounds: int = Field(default=100, ge=1)
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_fraction: float = Field(default=0.8, gt=0, le=1)
    lambda_l2: float = Field(default=1.0, ge=0)
    cat_smooth: float = Field(default=10.0, ge=0)
    min_data_per_group: int = Field(default=50, ge=1)
    monotone: bool = Field(
        default=False, description="more positive engagement never lowers a score"
    )
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    threads: int = Field(default=0, ge=0, description="0 = all cores")
    baseline: bool = Field(default=True, description="also fit the logistic-regression baseline")
    baseline_max_rows: int = Field(default=200_000, ge=1000)


class BandConfig(BaseModel):
    """How calibrated probabilities become SQL / MQL / Unqualified.

    policy `fixed`: `sql` and `mql` are probabilities.
    policy `rate`: `sql` and `mql` are the conversion rates each band must reach.
    policy `capacity`: `sql` and `mql` are the shares of leads (0-1) that go to each band or
    above, or, when `leads_per_period` is given, lead counts per period.
    """

    model_config = ConfigDict(extra="forbid")

    policy: Literal["fixed", "rate", "capacity"] = "fixed"
    sql: float = Field(default=0.5, gt=0)
    mql: float = Field(default=0.2, gt=0)
    leads_per_period: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> BandConfig:
        if self.policy in ("fixed", "rate"):
            if not (0 < self.mql < self.sql < 1):
                raise ValueError(
                    f"bands: need 0 < mql < sql < 1 for policy {self.policy!r}, got mql={self.mql}, sql={self.sql}"
                )
        elif self.leads_per_period is None:
            if not (0 < self.sql < self.mql <= 1):
                raise ValueError(
                    "bands: capacity shares need 0 < sql < mql <= 1 (SQL is the top slice)"
                )
        elif not (self.sql < self.mql <= self.leads_per_period):
            raise ValueError("bands: capacity counts need sql < mql <= leads_per_period")
        return self


class FlatConfig(BaseModel):
    """Flat CRM export: which columns mean what."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = None
    id_column: str | None = None
    drop: list[str] = Field(default_factory=list)
    sep: str | None = Field(default=None, description="delimiter; sniffed when not given")
    missing_values: list[str] = Field(
        default_factory=lambda: ["Select", "select", "N/A", "n/a", "NA", "null", "NULL", "-", "?"]
    )
    max_categories: int = Field(default=200, ge=2)


STAGE_NAMES = ("ToFu", "MoFu", "BoFu")


class GradeConfig(BaseModel):
    """How the words next to the score are learned: fit A-D x engagement 1-4, temperature,
    funnel stage and PQL (see README, "Grid, temperature, stage and PQL").

    `stages`: the funnel stage each kind of action says a lead has reached (CRM event kinds
    such as pricing_view or demo_request; a lead's stage is that of its strongest action in
    the last `stage_days`, or of its latest actions when there were none then). Change it
    per customer. Flat exports: `stage_column` names a column (e.g. the last activity) and
    `stage_values` maps its values to stages. `engagement_columns` / `usage_columns`: the
    columns of a flat export that tell what the lead did / how it used the product; by
    default engagement columns are found by their names (visits, views, time spent, activity).
    """

    model_config = ConfigDict(extra="forbid")

    stages: dict[str, str] = Field(
        default_factory=lambda: {
            "blog_view": "ToFu",
            "other_view": "ToFu",
            "product_view": "ToFu",
            "email_open": "ToFu",
            "pricing_view": "MoFu",
            "email_click": "MoFu",
            "content_download": "MoFu",
            "webinar": "MoFu",
            "form_submit": "MoFu",
            "demo_request": "BoFu",
            "trial_start": "BoFu",
            "cart_add": "BoFu",
            "activation": "BoFu",
            "feature_use": "BoFu",
            "seat_invite": "BoFu",
        }
    )
    stage_days: int = Field(default=30, gt=0, description="actions this recent set the stage")
    stage_column: str | None = None
    stage_values: dict[str, str] = Field(default_factory=dict)
    engagement_columns: list[str] | None = None
    usage_columns: list[str] = Field(default_factory=list)
    learning_rate: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="of the fit, engagement and usage sub-models (they only sort leads into "
        "quarters, so they may learn faster than the main model)",
    )
    hot_share: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        description="share of the calibration slice's leads called hot (as many are warm)",
    )

    @field_validator("stages", "stage_values")
    @classmethod
    def _known_stages(cls, mapping: dict[str, str]) -> dict[str, str]:
        wrong = {k: v for k, v in mapping.items() if v not in STAGE_NAMES}
        if wrong:
            raise ValueError(f"stages are {', '.join(STAGE_NAMES)}; got {wrong}")
        return mapping


class MonitorConfig(BaseModel):
    """`leadml monitor` and `leadml retrain`: how much matured data is enough to judge or
    retrain (the readiness gate), and where drift and calibration turn into warn / alert."""

    model_config = ConfigDict(extra="forbid")

    min_leads: int = Field(default=1000, ge=1)  # matured leads in the window
    min_conversions: int = Field(default=100, ge=1)  # conversions among them
    window_days: int = Field(default=90, ge=1)  # default period: the last N matured days
    psi_warn: float = Field(default=0.1, gt=0)  # population stability index per feature
    psi_alert: float = Field(default=0.25, gt=0)
    auc_tolerance: float = Field(default=0.02, ge=0)  # retrain: challenger may be this much worse

    @model_validator(mode="after")
    def _ordered(self) -> MonitorConfig:
        if self.psi_alert <= self.psi_warn:
            raise ValueError("monitor: need psi_warn < psi_alert")
        return self


class InputConfig(BaseModel):
    """How input files are read (see README, "What leadml accepts")."""

    model_config = ConfigDict(extra="forbid")

    date_format: Literal["day-first", "month-first"] | None = Field(
        default=None,
        description="order of numeric dates such as 03/04/2026 when no value shows it "
        "(31/12 is day-first, 12/31 month-first); default: found from the values",
    )
    max_reject_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="stop when a table has more rejected rows than this share",
    )


class TrainConfig(BaseModel):
    """Everything `leadml train` needs besides the data path."""

    model_config = ConfigDict(extra="forbid")

    input: InputConfig = Field(default_factory=InputConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    label: LabelConfig = Field(default_factory=LabelConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    bands: BandConfig = Field(default_factory=BandConfig)
    flat: FlatConfig = Field(default_factory=FlatConfig)
    grades: GradeConfig = Field(default_factory=GradeConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    leakage_auc: float = Field(
        default=0.95, gt=0.5, le=1, description="warn when one column alone reaches this AUC"
    )
    promote_metric: Literal["roc_auc", "log_loss"] = "roc_auc"

    def with_changes(self, changes: dict) -> TrainConfig:
        """This config with some settings changed, e.g. {"features": {"half_life_days": 7}}."""

        def merge(base: dict, new: dict) -> dict:
            return {
                k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                for k, v in {**base, **new}.items()
            }

        try:
            return TrainConfig.model_validate(merge(self.model_dump(), changes))
        except ValidationError as exc:
            raise ConfigError(f"invalid config change {changes}: {exc.errors()[0]['msg']}") from exc

    @classmethod
    def from_yaml(cls, path: Path | str | None) -> TrainConfig:
        """Read a YAML config; errors name the file, the key and what is expected."""
        if path is None:
            return cls()
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"{path}: config file not found. Pass an existing YAML file to --config."
            )
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or exc
            raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{path}: expected a mapping of sections (input, features, label, split, model, bands, flat, grades)"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "(top level)"
                problems.append(f"{where}: {err['msg']}")
            raise ConfigError(f"{path}: invalid config: {'; '.join(problems)}") from exc
