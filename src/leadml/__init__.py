"""leadml: learn lead conversion from CRM history; score leads with a calibrated probability, a 1-99 score and an SQL/MQL band.

Importing the package does nothing else: no logging set-up, no MLflow connection, no model
loading. Each step lives in its own module (see README.md, "Layout").
"""

__version__ = "0.1.0"
