"""`python -m leadml` is the `leadml` command."""

from leadml.cli import main

raise SystemExit(main())
