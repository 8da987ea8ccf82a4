"""The grammar of the ``experiment`` command: from its words to a command's request.

::

    experiment EXPERIMENT [--FIELD VALUE ...] [options]   run the settings not completed yet
    experiment status  EXPERIMENT [--FIELD VALUE ...]     what is done, failed, running, left
    experiment results EXPERIMENT [--over SEED] [--where EXPR] [--sort COL] [--csv | ...]
    experiment plot    EXPERIMENT --x PARAM --y METRIC [--hue PARAM] [--out FILE]
    experiment report  EXPERIMENT [--out report.html]
    experiment view    EXPERIMENT                      a live page until Ctrl-C
    experiment logs    EXPERIMENT [--FIELD VALUE ...] [-f] [-n N]
    experiment clean   EXPERIMENT [--yes]
    experiment diff    EXPERIMENT A B [--metric NAMES] [--json]   two code versions' outcomes

A command word is a command only when it comes first and an experiment follows it, so
``experiment params.Hyperparams ...`` always means run. The words before the experiment's
name are read first (:func:`split`), then, once the experiment is found and its fields are
known (:func:`fields_of`), the words after it (:func:`read`). Each word is a field's flag
(:func:`_read_field`, dotted for a nested experiment's field, ``--no-FLAG`` for false) or
one of the command's options, read as the option table says
(:mod:`superparams._cli._options`). Where a field and an option share a flag, in a run the
field keeps it (the option is ``--run-NAME``), and in every other command the command's
option wins (:func:`~superparams._cli._options.option_wins`); ``--set NAME=VALUES`` sets any
field in every command. :meth:`Words.request` turns what was read into the command's own
request (:mod:`superparams._cli._requests`), which checks the options that exclude each
other.

This room owns the order and the shape of the words, and the messages for words that fit
no field and no option; it owns no option (that is the table's) and no check of options
against each other (that is the requests'). Nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from superparams._cli._options import (
    COMMAND_WORDS,
    Option,
    add_key,
    closest_option,
    option_named,
    option_wins,
)
from superparams._cli._requests import REQUESTS, Request
from superparams._declared import declared
from superparams.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._experiment import Experiment


@dataclass
class Words:
    """What the words of a command said, as they are read."""

    command: str = "run"
    target: str | None = None
    help: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # field name -> (the flag as written, its text; None for a bare boolean flag)
    overrides: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    # option dest (or --field) -> the words that gave it, to name both if given twice
    given: dict[str, str] = field(default_factory=dict)

    def request(self) -> Request:
        """The command's typed request.

        Raises:
            UsageError: options that exclude each other, or one the engine does not take.
        """
        assert self.target is not None  # the caller has found the experiment
        return REQUESTS[self.command](
            target=self.target, overrides=self.overrides, given=self.given, **self.options
        )


@dataclass(frozen=True)
class Fields:
    """The fields flags may set: their names, and which take true or false."""

    owner: str  # the class, or the file when it holds several
    several: bool
    names: tuple[str, ...]
    flags: frozenset[str]  # bool fields: `--flag` alone means true
    derived: frozenset[str]
    classes: tuple[type[Experiment], ...] = ()  # whose fields these are, for dotted names


def is_number(text: str) -> bool:
    """Whether text reads as a number (``-1`` is a value, not an option; a column of them
    aligns right)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_option(token: str) -> bool:
    return token.startswith("-") and token != "-" and not is_number(token)


def split(argv: list[str]) -> tuple[Words, list[str], list[str]]:
    """The command, and the words before and after the experiment's name."""
    request = Words()
    words = argv
    if (
        len(argv) >= 2
        and argv[0] in COMMAND_WORDS
        and (not _is_option(argv[1]) or argv[1] in ("-h", "--help"))
    ):
        request.command, words = argv[0], argv[1:]
    i = 0
    while i < len(words):
        word = words[i]
        if not _is_option(word):
            request.target = word
            return request, words[:i], words[i + 1 :]
        option = option_named(word)
        takes_next = option is not None and option.metavar and not option.alone
        i += 2 if takes_next and "=" not in word else 1
    return request, words, []


def read(request: Words, words: list[str], fields: Fields | None) -> None:
    """Read options and field values into ``request``; before the name, no fields yet."""
    rest = _Rest(words)
    while rest:
        word = rest.take()
        if word in ("-h", "--help"):
            request.help = True
        elif not _is_option(word) and request.command == "diff" and fields is not None:
            request.options["versions"] = (*request.options.get("versions", ()), word)
        elif not _is_option(word):
            where = f"after {request.target!r}" if fields is not None else "here"
            msg = f"unexpected {word!r} {where}; field values are written --FIELD VALUE"
            raise UsageError(msg)
        else:
            flag = _Flag.of(word)
            if fields is None or not _read_field(request, flag, rest, fields):
                _read_option(request, flag, rest, fields)


class _Rest:
    """The words not read yet, taken one at a time."""

    def __init__(self, words: list[str]) -> None:
        self._words = words
        self._next = 0

    def __bool__(self) -> bool:
        return self._next < len(self._words)

    def take(self) -> str:
        self._next += 1
        return self._words[self._next - 1]

    def value_of(self, flag: str) -> str:
        """The word after a flag that needs a value.

        Raises:
            UsageError: no word is left, or the next is a long option.
        """
        if not self or self._words[self._next].startswith("--"):
            msg = f"{flag} needs a value"
            raise UsageError(msg)
        return self.take()

    def value_if_any(self) -> str | None:
        """The word after a flag that may stand alone, unless it is an option."""
        if self and self._words[self._next] and not _is_option(self._words[self._next]):
            return self.take()
        return None


@dataclass(frozen=True)
class _Flag:
    """An option word as written: ``--lr``, ``--lr=0.1``, ``-j4``."""

    word: str
    flag: str  # the word without its value
    value: str | None  # the value written in the word itself, if any

    @classmethod
    def of(cls, word: str) -> _Flag:
        flag, eq, inline = word.partition("=")
        if not flag.startswith("--") and len(flag) > 2:  # -j4, -n20
            flag, inline, eq = flag[:2], flag[2:], "="
        return cls(word, flag, inline if eq else None)

    @property
    def name(self) -> str:
        """What a long flag names (``lr`` for ``--lr``); "" for a short one."""
        return self.flag[2:] if self.flag.startswith("--") else ""


def _read_field(request: Words, written: _Flag, rest: _Rest, fields: Fields) -> bool:
    """Read a field's value if ``written`` is a field's flag here; whether it was.

    A bool field's flag alone is true, and takes the word after it when that is no
    option; ``--no-FLAG`` is false.
    """
    flag, name = written.flag, written.name
    if not name or option_wins(option_named(flag), flag, request.command):
        return False
    target, takes_bool = field_named(name, fields), False
    if target is None and "." in name:
        target, takes_bool = _dotted(flag, name, fields)
    if target is None:
        return _read_negated(request, written, fields)
    value = written.value
    if value is None and (takes_bool or target in fields.flags):
        value = rest.value_if_any()
    elif value is None:
        value = rest.value_of(flag)
    _override(request, target, flag, value, written.word if value is None else None)
    return True


def _read_negated(request: Words, written: _Flag, fields: Fields) -> bool:
    """``--no-FLAG`` (or ``--noFLAG``, ``--no_FLAG``) for a bool field: false; whether it was."""
    name = written.name
    negated = field_named(name[3:], fields) if name.startswith("no") else None
    if negated is None or negated not in fields.flags or written.value is not None:
        return False
    _override(request, negated, written.flag, "false", written.word)
    return True


def _read_option(request: Words, written: _Flag, rest: _Rest, fields: Fields | None) -> None:
    """Read the command's option ``written`` spells, with its value if it takes one.

    Raises:
        UsageError: no option of this command, a value missing, or one it does not take.
    """
    flag = written.flag
    option = option_named(flag)
    if option is None or request.command not in option.commands:
        raise UsageError(_unknown_option(flag, request, fields, option))
    if not option.metavar:
        if written.value is not None:
            msg = f"{flag} takes no value, got {written.word!r}"
            raise UsageError(msg)
        _once(request, option.dest, flag)
        request.options[option.dest] = True
        return
    if option.alone and written.value is None:
        value = option.alone
    else:
        value = written.value if written.value is not None else rest.value_of(flag)
    if option.dest == "overrides":
        _set(request, flag, value, fields)
    else:
        _read_value(request, option, flag, value)


def _read_value(request: Words, option: Option, flag: str, text: str) -> None:
    """An option's value, read by the table's reader: once, or added up if it repeats."""
    assert option.read is not None  # an option with a metavar has a reader
    value = option.read(flag, text)
    if option.repeats and option.dest in request.options:
        earlier = request.options[option.dest]
        if isinstance(value, list):
            value = [*earlier, *value]
        else:  # KEY=VALUE pairs: each key once over all of them
            value, pairs = dict(earlier), value
            for key, item in pairs.items():
                add_key(flag, value, key, item)
    else:
        _once(request, option.dest, f"{flag} {text}")
    request.options[option.dest] = value


def _set(request: Words, flag: str, text: str, fields: Fields | None) -> None:
    """``--set NAME=VALUES``: the field NAME, whatever its name, read as ``--NAME VALUES``.

    Raises:
        UsageError: no ``=``, before the experiment's name, or no such field.
    """
    name, eq, value = text.partition("=")
    name = name.strip()
    if not eq or not name:
        msg = (
            f"{flag} expects NAME=VALUES, a field and its value (or values separated by "
            f"commas), e.g. {flag} lr=0.1,0.01; got {text!r}"
        )
        raise UsageError(msg)
    if fields is None:
        msg = (
            f"{flag} {text} sets a field; it goes after the experiment's name: "
            f"experiment EXPERIMENT {flag} {text}"
        )
        raise UsageError(msg)
    written = f"{flag} {name}"
    target = field_named(name, fields)
    if target is None and "." in name:
        target, _ = _dotted(written, name, fields)
    if target is None:
        raise UsageError(_no_field(written, name, fields))
    _override(request, target, written, value, None, f"{flag} {text}")


def _override(
    request: Words,
    name: str,
    flag: str,
    value: str | None,
    bare: str | None,
    written: str | None = None,
) -> None:
    """Set a field's text, once: a second value would silently replace the first.

    ``bare`` is the flag as written when it stands alone (``--flag``, ``--no-flag``);
    ``written`` the words that gave the value, when not ``flag value`` (``--set x=1``).
    """
    written = bare or written or f"{flag} {value}"
    key = f"--{name}"
    earlier = request.given.get(key)
    if earlier is not None:
        msg = f"--{name} is given twice ({earlier}, then {written}); give it once"
        before, spelled = request.overrides[name][1], request.overrides[name][0]
        if bare is None and " " in earlier:  # both with a value: a search holds both
            sep = "=" if spelled.startswith("--set ") else " "
            both = f"{spelled}{sep}{before},{value}"
            msg += f", or search over both: {both}"
        raise UsageError(msg)
    request.given[key] = written
    request.overrides[name] = (flag, value)


def _once(request: Words, dest: str, written: str) -> None:
    """Refuse an option given twice, under any of its names (-j 2 --num_proc 3)."""
    earlier = request.given.get(dest)
    if earlier is not None:
        msg = f"{written.split()[0]} is given twice ({earlier}, then {written}); give it once"
        raise UsageError(msg)
    request.given[dest] = written


def field_named(name: str, fields: Fields) -> str | None:
    if name in fields.names:
        return name
    underscored = name.replace("-", "_")
    return underscored if underscored in fields.names else None


def _dotted(flag: str, name: str, fields: Fields) -> tuple[str | None, bool]:
    """The field a dotted flag (``--model.width``) names in a nested experiment, and
    whether it takes true or false; None when the first name is no field at all.

    Raises:
        UsageError: the first name holds no experiment, or the nested one has no such field.
    """
    from superparams._cli._values import expected, is_bool

    head, _, rest = name.partition(".")
    top = field_named(head, fields)
    if top is None or not rest:
        return None, False
    owner = next(c for c in fields.classes if top in declared(c).fields)
    where, annotation = f"{owner.__name__}.{top}", declared(owner).annotations.get(top)
    path = [top]
    for part in rest.split("."):
        nested = nested_class(annotation)
        if nested is None:
            msg = (
                f"{flag}: {where} is {expected(annotation)}, not a nested experiment; only a "
                "nested experiment's fields are set with a dot"
            )
            raise UsageError(msg)
        info = declared(nested)
        found = part if part in info.fields else part.replace("-", "_")
        if found not in info.fields:
            names = list(info.fields)
            msg = (
                f"{flag}: {nested.__name__} has no field {part!r}{did_you_mean(part, names)}; "
                f"its fields are {', '.join(names)}"
            )
            raise UsageError(msg)
        path.append(found)
        where, annotation = f"{nested.__name__}.{found}", info.annotations.get(found)
    return ".".join(path), is_bool(annotation)


def nested_class(annotation: Any) -> type[Experiment] | None:
    """The experiment class a field holds, from its annotation (``Model``), or None."""
    if isinstance(annotation, type) and hasattr(annotation, "_sp_info"):
        return annotation
    return None


def _unknown_option(flag: str, request: Words, fields: Fields | None, option: Option | None) -> str:
    if option is not None:
        where = "a run" if option.commands == ("run",) else "/".join(option.commands)
        return f"{flag} is an option of {where}, not of {_command_name(request)}"
    name = flag.lstrip("-")
    if fields is None:
        return (
            f"unknown option {flag}; field values go after the experiment's name: "
            f"experiment EXPERIMENT {flag} VALUE"
        )
    if not did_you_mean(name, fields.names):
        close = _close_option(flag, request.command)
        if close:
            owner = f"any experiment in {fields.owner}" if fields.several else fields.owner
            return f"{flag} is not an option, nor a field of {owner}{close}{_listed(fields)}"
    return _no_field(flag, name, fields)


def _close_option(flag: str, command: str) -> str:
    """A "did you mean" naming the option of ``command`` closest to ``flag``, under the
    spelling help and the README use (``--dry-run``, never ``--dry_run``)."""
    close = closest_option(flag, command)
    return f" (did you mean {close!r}?)" if close else ""


def _listed(fields: Fields) -> str:
    its = "their" if fields.several else "its"
    return f"; {its} fields are {', '.join(fields.names)}" if fields.names else "; no fields"


def _no_field(flag: str, name: str, fields: Fields) -> str:
    hint = did_you_mean(name, fields.names)
    if fields.several:
        return (
            f"{flag}: no experiment in {fields.owner} has a field {name!r}{hint}{_listed(fields)}"
        )
    return f"{flag}: {fields.owner} has no field {name!r}{hint}{_listed(fields)}"


def _command_name(request: Words) -> str:
    return "a run" if request.command == "run" else f"`experiment {request.command}`"


# -- from the words to spaces ------------------------------------------------------------------


def fields_of(found: Found) -> Fields:
    """The fields the experiments ``found`` names take flags for."""
    from superparams._cli._find import shown
    from superparams._cli._values import is_bool

    names: dict[str, None] = {}
    flags: set[str] = set()
    derived: set[str] = set()
    for cls in found.classes:
        info = declared(cls)
        names.update(dict.fromkeys(info.fields))
        derived.update(n for n, _ in info.derived)
        flags.update(n for n in info.fields if is_bool(info.annotations.get(n)))
    several = len(found.classes) > 1
    owner = shown(found.path) if several else found.classes[0].__name__
    names.update(dict.fromkeys(sorted(derived)))
    return Fields(owner, several, tuple(names), frozenset(flags), frozenset(derived), found.classes)
