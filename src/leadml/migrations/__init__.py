"""The score store's schema history (Alembic), shipped inside the package: `store.ScoreStore`
brings a database to the newest revision when it opens it. See README.md here."""
