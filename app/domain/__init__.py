"""The business rules.  Every state change is a verb-first function taking a keyword-only
``actor`` and running inside ``write_tx()``; console, API, CLI and workers all call these."""
