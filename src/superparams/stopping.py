"""Stopping a setting early: rules that read the rows reported so far.

``run_all(stop=...)`` takes a rule, or a list of rules (any one stops a setting):

* :func:`median` stops a setting whose metric at step k is worse than the median of the
  other settings' at step k, once k is past a warm-up;
* :func:`threshold` stops a setting whose metric is past a bound (or NaN);
* :func:`halving` is successive halving across settings (as ASHA does it): at rungs
  of the step column, a setting goes on only if it is in the best 1/eta of those that
  reached the rung;
* any function ``rule(rows, others) -> bool`` is a rule of your own: ``rows`` are this
  setting's rows so far, the newest last, ``others`` every other setting's rows by id.

A class declares its own rules as the class attribute ``stop`` (the same values), which
``run_all`` and the command use unless given others; on the command line ``--stop`` takes
a rule as text, ``--stop 'median(loss, step=epoch, warmup=2)'`` (:func:`parse`).

A rule is checked at each ``self.report(...)``; when it says stop, ``report()`` raises
:class:`StoppedEarly` (which ``run()`` need not catch: it is no ``Exception``), the
setting is completed with the rows it reported, its ``stopped`` column names the rule,
and it is not run again on resume.

Where it is checked: the run keeps one :class:`Stopping` (the rules and every reported
row, a :class:`History`); the driver calls :meth:`Stopping.reported` with each row as it
arrives, and tells the worker's ``report()`` to raise when it returns a rule's name.
Everything here is pure Python over rows: no process, no store.

>>> rule = median("loss", step="epoch", warmup=1, min_others=1)
>>> stopping = Stopping([rule])
>>> stopping.reported("a", {"epoch": 1, "loss": 0.5}) is None
True
>>> stopping.reported("b", {"epoch": 1, "loss": 0.9})  # worse than a's at epoch 1
'median(loss)'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

__all__ = [
    "History",
    "Rule",
    "StoppedEarly",
    "Stopping",
    "check_rules",
    "decide",
    "halving",
    "median",
    "name_of",
    "parse",
    "threshold",
]

Row = Mapping[str, Any]
Mode = Literal["min", "max"]


class StoppedEarly(BaseException):  # a stop, not an error
    """Raised by ``self.report()`` when a stop rule ends the setting.

    A ``BaseException`` (like ``KeyboardInterrupt``), so an ``except Exception`` in
    ``run()`` does not swallow it; ``run()`` need not catch it. The setting is stored
    completed, with every row it reported and ``rule`` in its ``stopped`` column.
    """

    def __init__(self, rule: str) -> None:
        super().__init__(f"stopped early by {rule}")
        self.rule = rule


class History:
    """Every row reported so far, by setting id, and what the rules ask of them.

    :meth:`at` answers "each setting's value of a metric at step k" from an index that
    is made on the first question and kept up to date after, so a check costs about
    the number of settings, not of rows.
    """

    def __init__(self) -> None:
        self._rows: dict[str, list[Row]] = {}
        # (step column, metric) -> step value -> setting id -> its latest value there
        self._index: dict[tuple[str, str], dict[Any, dict[str, Any]]] = {}

    def add(self, setting_id: str, row: Row) -> None:
        """Note a row a setting reported."""
        self._rows.setdefault(setting_id, []).append(row)
        for (step, metric), index in self._index.items():
            _note(index, setting_id, row, step, metric)

    def rows(self, setting_id: str) -> list[Row]:
        """A setting's rows, the newest last (a copy)."""
        return list(self._rows.get(setting_id, ()))

    def others(self, setting_id: str) -> dict[str, list[Row]]:
        """Every other setting's rows, by id (copies)."""
        return {sid: list(rows) for sid, rows in self._rows.items() if sid != setting_id}

    def at(self, step: str, metric: str, k: Any) -> dict[str, Any]:
        """Each setting's latest value of ``metric`` in a row whose ``step`` is ``k``."""
        index = self._index.get((step, metric))
        if index is None:
            index = self._index[step, metric] = {}
            for sid, rows in self._rows.items():
                for row in rows:
                    _note(index, sid, row, step, metric)
        return index.get(_key(k), {})


def _note(index: dict[Any, dict[str, Any]], sid: str, row: Row, step: str, metric: str) -> None:
    if step in row and metric in row:
        index.setdefault(_key(row[step]), {})[sid] = row[metric]


def _key(k: Any) -> Any:
    """A step value as a dict key: 3 and 3.0 are the same step; others as they are."""
    if isinstance(k, float) and k.is_integer():
        return int(k)
    try:
        hash(k)
    except TypeError:
        return repr(k)
    return k


class Rule(Protocol):
    """A built-in rule: whether to stop a setting, after its newest row (the last of its
    rows in ``history``). A user's rule is simpler: ``rule(rows, others) -> bool``."""

    def __call__(self, setting_id: str, history: History) -> bool: ...


def _number(value: Any) -> float | None:
    """A metric's value as a float, or None if it is not a number (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class _Median:
    def __init__(self, metric: str, step: str, mode: Mode, warmup: Any, min_others: int) -> None:
        self.metric, self.step, self.mode = metric, step, mode
        self.warmup, self.min_others = warmup, min_others
        self.__name__ = f"median({metric})"

    def __call__(self, setting_id: str, history: History) -> bool:
        rows = history._rows.get(setting_id)
        if not rows:
            return False
        last = rows[-1]
        k, value = last.get(self.step), _number(last.get(self.metric))
        if value is None or _number(k) is None or k < self.warmup:
            return False
        found = history.at(self.step, self.metric, k)
        numbers = (_number(v) for sid, v in found.items() if sid != setting_id)
        others = [v for v in numbers if v is not None and not math.isnan(v)]
        if len(others) < max(self.min_others, 1):
            return False
        import statistics  # here: a worker imports this module for StoppedEarly alone

        middle = statistics.median(others)
        if math.isnan(value):
            return True  # diverged: worse than any number
        return bool(value > middle if self.mode == "min" else value < middle)

    def __repr__(self) -> str:
        return (
            f"median({self.metric!r}, step={self.step!r}, mode={self.mode!r}, "
            f"warmup={self.warmup!r}, min_others={self.min_others!r})"
        )


def median(
    metric: str, *, step: str, mode: Mode = "min", warmup: float = 0, min_others: int = 2
) -> Rule:
    """Stop a setting whose ``metric`` at step k is worse than the median of the other
    settings' at step k (``mode="min"``: greater, as for a loss; ``"max"``: smaller).

    Args:
        metric: the column the setting reports, e.g. ``"val_loss"``.
        step: the column that numbers its reports, e.g. ``"epoch"``: step k of two
            settings is their rows whose ``step`` is k.
        warmup: rows whose step is below it never stop a setting.
        min_others: how many other settings must have reported step k first.

    A setting whose value is NaN at a step the others reached is worse than all; a row
    without the step or the metric, or whose metric is not a number, stops nothing.
    """
    _check_mode("median", mode)
    return _Median(metric, step, mode, warmup, min_others)


class _Threshold:
    def __init__(
        self, metric: str, above: float | None, below: float | None, step: str | None, after: Any
    ) -> None:
        self.metric, self.above, self.below = metric, above, below
        self.step, self.after = step, after
        self.__name__ = f"threshold({metric})"

    def __call__(self, setting_id: str, history: History) -> bool:
        rows = history._rows.get(setting_id)
        if not rows:
            return False
        last = rows[-1]
        value = _number(last.get(self.metric))
        if value is None:
            return False
        if self.step is not None:
            k = last.get(self.step)
            if _number(k) is None or k < self.after:
                return False
        if math.isnan(value):
            return True
        return (self.above is not None and value > self.above) or (
            self.below is not None and value < self.below
        )

    def __repr__(self) -> str:
        return (
            f"threshold({self.metric!r}, above={self.above!r}, below={self.below!r}, "
            f"step={self.step!r}, after={self.after!r})"
        )


def threshold(
    metric: str,
    *,
    above: float | None = None,
    below: float | None = None,
    step: str | None = None,
    after: float = 0,
) -> Rule:
    """Stop a setting whose latest ``metric`` is over ``above`` or under ``below``, or
    NaN (a diverged loss): ``threshold("loss", above=10)``.

    With ``step`` (a column, e.g. ``"epoch"``), only rows whose step is at least
    ``after`` are checked: ``threshold("acc", below=0.2, step="epoch", after=5)``.
    """
    if above is None and below is None:
        from superparams.errors import UsageError

        msg = f"threshold({metric!r}) needs a bound: above=..., below=..., or both"
        raise UsageError(msg)
    return _Threshold(metric, above, below, step, after)


class _Halving:
    def __init__(self, metric: str, step: str, mode: Mode, eta: float, min_step: float) -> None:
        self.metric, self.step, self.mode = metric, step, mode
        self.eta, self.min_step = eta, min_step
        self.__name__ = f"halving({metric})"

    def rung(self, k: float) -> bool:
        """Whether step ``k`` is a rung: min_step times a whole power of eta."""
        rung = self.min_step
        while rung < k and not math.isclose(rung, k):
            rung *= self.eta
        return math.isclose(rung, k)

    def __call__(self, setting_id: str, history: History) -> bool:
        rows = history._rows.get(setting_id)
        if not rows:
            return False
        last = rows[-1]
        k, value = _number(last.get(self.step)), _number(last.get(self.metric))
        if value is None or k is None or not self.rung(k):
            return False
        if math.isnan(value):
            return True
        found = history.at(self.step, self.metric, last[self.step])
        numbers = (_number(v) for v in found.values())
        reached = sorted(
            (v for v in numbers if v is not None and not math.isnan(v)),
            reverse=self.mode == "max",
        )
        # The best 1/eta of the settings at this rung go on (at least one: the first to
        # reach a rung always does, as in ASHA's asynchronous promotion).
        kept = max(1, int(len(reached) // self.eta))
        cut = reached[kept - 1]
        return bool(value > cut if self.mode == "min" else value < cut)

    def __repr__(self) -> str:
        return (
            f"halving({self.metric!r}, step={self.step!r}, mode={self.mode!r}, "
            f"eta={self.eta!r}, min_step={self.min_step!r})"
        )


def halving(
    metric: str, *, step: str, mode: Mode = "min", eta: float = 3, min_step: float = 1
) -> Rule:
    """Successive halving across settings, as ASHA does it: at the rungs of ``step``
    (``min_step``, ``min_step * eta``, ``min_step * eta**2``, ...), a setting goes on only
    if its ``metric`` is among the best 1/eta of the values that every setting reported at
    that rung so far (``mode="min"``: the smallest, as for a loss; ``"max"``: the largest).

    Asynchronous: a setting is judged against those that reached the rung before it, so
    none waits for the others; the first to reach a rung always goes on. With ``eta=3``,
    about a third of the settings pass each rung. A NaN at a rung stops the setting.

    >>> rule = halving("loss", step="epoch", eta=2)
    >>> stopping = Stopping([rule])
    >>> [stopping.reported(s, {"epoch": 1, "loss": v}) for s, v in [("a", 0.5), ("b", 0.4)]]
    [None, None]
    >>> stopping.reported("c", {"epoch": 1, "loss": 0.9})  # not in the best half of 3
    'halving(loss)'
    """
    from superparams.errors import UsageError

    _check_mode("halving", mode)
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta > 1:
        msg = f"halving(eta={eta!r}): eta is how many settings share one place, a number > 1"
        raise UsageError(msg)
    if isinstance(min_step, bool) or not isinstance(min_step, (int, float)) or not min_step > 0:
        msg = f"halving(min_step={min_step!r}): the first rung is a step above 0, e.g. 1"
        raise UsageError(msg)
    return _Halving(metric, step, mode, eta, min_step)


def _check_mode(rule: str, mode: object) -> None:
    """Refuse a mode that is neither min nor max, naming the rule it was given to."""
    if mode not in ("min", "max"):
        from superparams.errors import UsageError

        msg = f"{rule}(mode={mode!r}): mode is 'min' (a loss) or 'max' (an accuracy)"
        raise UsageError(msg)


#: The rules ``--stop`` knows by name.
_BUILTINS: dict[str, Any] = {"median": median, "threshold": threshold, "halving": halving}


def parse(text: str) -> Rule:
    """A rule from its text, as ``--stop`` takes it: ``median(loss, step=epoch)``.

    The text is a call of ``median``, ``threshold`` or ``halving``: the metric first, then
    the keywords each takes; a bare word is a column's name (``step=epoch``), numbers and
    quoted strings are themselves. Nothing in it is run.

    Raises:
        UsageError: for text that is not such a call, naming what to write.

    >>> parse("threshold(loss, above=10)")
    threshold('loss', above=10, below=None, step=None, after=0)
    """
    import ast

    from superparams.errors import UsageError, did_you_mean

    names = ", ".join(_BUILTINS)
    example = "median(loss, step=epoch, warmup=2)"
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        call = None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        msg = f"--stop {text!r} is not a rule; write one of {names} as a call, e.g. {example}"
        raise UsageError(msg)
    name = call.func.id
    if name not in _BUILTINS:
        hint = did_you_mean(name, list(_BUILTINS))
        msg = f"--stop {text!r}: no rule {name!r}{hint}; the rules are {names}"
        raise UsageError(msg)
    try:
        args = [_word(a) for a in call.args]
        kwargs = {k.arg: _word(k.value) for k in call.keywords if k.arg is not None}
    except ValueError as error:
        msg = f"--stop {text!r}: {error}; a value is a number, a quoted text or a column's name"
        raise UsageError(msg) from None
    import inspect

    signature = inspect.signature(_BUILTINS[name])
    options = [p for p in signature.parameters if p != "metric"]
    for key in kwargs:
        if key not in options:
            msg = (
                f"--stop {text!r}: {name}() has no option {key!r}{did_you_mean(key, options)}; "
                f"its options are {', '.join(options)}"
            )
            raise UsageError(msg)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        msg = f"--stop {text!r}: {error}; e.g. {example}"
        raise UsageError(msg) from None
    rule: Rule = _BUILTINS[name](*args, **kwargs)
    return rule


def _word(node: Any) -> Any:
    """A value of a rule's text: a literal, or a bare name standing for a column's name."""
    import ast

    if isinstance(node, ast.Name):
        return {"None": None, "True": True, "False": False}.get(node.id, node.id)
    try:
        return ast.literal_eval(node)
    except ValueError:
        msg = f"{ast.unparse(node)!r} is not a value"
        raise ValueError(msg) from None


def name_of(rule: Any) -> str:
    """What the ``stopped`` column says of a rule: ``median(loss)``, a function's name."""
    return str(getattr(rule, "__name__", None) or type(rule).__name__)


def check_rules(stop: Any) -> list[Any]:
    """``run_all``'s ``stop``: None, a rule, or rules, as a list; a :class:`UsageError`
    for anything that is not a callable."""
    if stop is None:
        return []
    rules = list(stop) if isinstance(stop, (list, tuple)) else [stop]
    for rule in rules:
        if not callable(rule):
            from superparams.errors import UsageError

            msg = (
                f"stop={rule!r} is not a rule: give median(...), threshold(...) from "
                "superparams.stopping, or a function rule(rows, others) -> bool"
            )
            raise UsageError(msg)
    return rules


def _is_builtin(rule: Any) -> bool:
    return isinstance(rule, (_Median, _Threshold, _Halving))


class Stopping:
    """A run's stop rules and the rows reported so far: what the driver asks at each
    reported row (see the module's docstring for where it is called)."""

    def __init__(self, rules: Iterable[Any], history: History | None = None) -> None:
        self.rules: list[Any] = list(rules)
        self.history: History = history if history is not None else History()

    @classmethod
    def seeded(cls, rules: Iterable[Any], rows: Iterable[Row], id_column: str = "id") -> Stopping:
        """With the rows stored before (a results table's ``to_dicts()``): settings
        completed in an earlier run count among the others."""
        history = History()
        for row in rows:
            history.add(str(row[id_column]), row)
        return cls(rules, history)

    def reported(self, setting_id: str, row: Row) -> str | None:
        """Note one reported row; the name of the first rule that stops the setting
        (for its ``stopped`` column, and :class:`StoppedEarly`), or None to go on.

        A user's rule that raises stops nothing; the exception propagates to the
        caller, which fails the setting with it.
        """
        self.history.add(setting_id, row)
        return decide(self.rules, setting_id, self.history)

    def forget(self, setting_id: str) -> None:
        """Drop a setting's rows: it starts fresh (``--fresh``, a rerun of outdated)."""
        self.history._rows.pop(setting_id, None)
        for index in self.history._index.values():
            for values in index.values():
                values.pop(setting_id, None)


def decide(rules: Sequence[Any], setting_id: str, history: History) -> str | None:
    """Which rule, if any, stops ``setting_id`` after its newest row in ``history``:
    the first that says so, by its :func:`name_of`; None to go on. A pure function of
    the rows."""
    for rule in rules:
        if _is_builtin(rule):
            stops = rule(setting_id, history)
        else:  # a user's rule(rows, others): copies, so it cannot change the history
            stops = rule(history.rows(setting_id), history.others(setting_id))
        if stops:
            return name_of(rule)
    return None
