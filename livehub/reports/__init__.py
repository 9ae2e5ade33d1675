"""Post-stream engagement reports, computed from the durable event log.

``model`` is the report's shape (the contract renderers read), ``builder`` folds
a stream's events into it in one pass, ``export`` writes JSON and CSV, ``store``
keeps built reports in the SQLite database and ``source`` reads events for the
command line (the server reads them through the event log).
"""
