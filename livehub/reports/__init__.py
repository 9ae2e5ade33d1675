"""Post-stream engagement reports, computed from the durable event log.

``model`` is the report's shape (the contract renderers read), ``builder`` folds
a stream's events into it in one pass, ``export`` writes JSON and CSV, ``store``
keeps built reports in the SQLite database and ``source`` reads events for the
command line (the server reads them through the event log).

The fold keeps its running records in ``tallies``; once it is done, ``folded``
works out what every section needs (presence clipped to the stream, watch time,
pseudonyms) and ``build_summary``, ``build_people`` and ``build_interactions``
make the sections. ``html`` is the page shell of the HTML report; its labels and
formatting are in ``html_format``, its SVG charts in ``html_charts`` and its
sections in ``html_summary``, ``html_people`` and ``html_interactions``.
Imports run one way: ``builder`` -> ``build_*`` -> ``folded`` -> ``tallies``, and
``html`` -> ``html_*`` sections -> ``html_charts`` -> ``html_format``.
"""
