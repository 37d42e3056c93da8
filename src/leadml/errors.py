"""The errors a person has to act on, in one family.

Each message says which file, row or field, what was expected and what to do. The command
line catches `LeadmlError` once (one line, exit code 2; the traceback only with -v); the
service maps it once to a 4xx answer. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LeadmlError(Exception):
    """Base of every error leadml raises for something a person has to fix."""

    status = 400  # the HTTP status the service answers with


class ContractError(LeadmlError, ValueError):
    """The input as a whole breaks the contract (a file, a column, too many bad rows)."""

    status = 422


class ConfigError(LeadmlError, ValueError):
    """A config file, option or setting a person has to fix."""


class RulesError(LeadmlError, ValueError):
    """A rules file a marketer has to fix: names the file, the rule and the line."""


class EngineError(LeadmlError, RuntimeError):
    """The engine asked for (a Dask cluster) cannot do the job; the message says what to change."""

    status = 503


class ModelError(LeadmlError):
    """No model, or a model that cannot do what was asked (wrong kind of data, missing files)."""

    status = 503


class PromotionError(LeadmlError, ValueError):
    """A promotion leadml refuses; the message says why and what to do."""

    status = 409


class NotFoundError(LeadmlError, LookupError):
    """Something asked for by its id that leadml does not have (a lead with no kept score)."""

    status = 404
