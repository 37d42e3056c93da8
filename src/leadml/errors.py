"""The errors a person has to act on. Each message says which file, row or field, what was
expected and what to do; the command line prints it as one line (exit code 2), the service
maps it to a 4xx answer.
"""

from __future__ import annotations


class LeadmlError(Exception):
    """Base of every error leadml raises for something a person has to fix."""


class ContractError(LeadmlError, ValueError):
    """The input as a whole breaks the contract (a file, a column, too many bad rows)."""
