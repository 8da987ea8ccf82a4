"""The columns the store adds to an experiment's results, and their types.

Every results table ends with the bookkeeping columns (:data:`BOOKKEEPING`), each with
its type even in an empty table; a parameter column whose annotation fixes a type has
that type too, which the store's callers give it (see
:func:`superparams._summary.column_types`). The model reserves these names through the
front door (a field may not be called ``status``); the store types its tables by them.
"""

from __future__ import annotations

#: The bookkeeping columns every results table ends with, and their polars types (see
#: :func:`_dtype`): each column here has its type in every table, even an empty one.
BOOKKEEPING = {
    "status": "String",
    "attempt": "Int64",
    "cause": "String",
    "error": "String",
    "traceback": "String",
    "started": "Datetime(us, UTC)",
    "seconds": "Float64",
    "worker": "Int64",
    "log": "String",
    "workdir": "String",
    "stopped": "String",
    "code_version": "String",
    "git_commit": "String",
    "git_dirty": "Boolean",
    "environment": "String",
}

#: The bookkeeping columns a reader adds to a results table, and their polars types: worked
#: out when the results are read, never stored (see :mod:`superparams._outdated`). A value
#: run() returns under one of these names is kept under another, as for :data:`BOOKKEEPING`.
COMPUTED = {
    "outdated": "Boolean",
    "superseded": "Boolean",  # only in every version's outcomes: see superparams._versions
}
