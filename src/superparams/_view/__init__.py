"""The page that shows an experiment's results: served live (``experiment view``) or
written as one offline file (``experiment report``).

Inside::

    _data.py     what the page shows of an experiment, as data (polars, the summary)
    _page.py     the page itself: the template, its script and Plotly, put together
    _server.py   the local server that follows a run (Starlette on uvicorn)
    page.html  page.js  page.css     the page's own files (package data)

Needs the ``view`` extra (Plotly, Starlette, uvicorn); nothing here is imported by
``experiment --help``.
"""
