"""Dynamic fan-out (``for_each``), the pure half: items, their text, slugs and ids.

A ``for_each`` step is expanded when it may start: its template (e.g.
``${steps.list.outputs.ITEMS}``) is rendered and must be a JSON array of at most
``max_items`` items. Item ``i`` becomes the instance ``base[i:SHORT]``
(:func:`planrun.model.instance_id`), SHORT being the item's text slugged to
``[A-Za-z0-9._-]`` (at most :data:`SLUG_MAX` characters; the index alone when nothing is
left). The index makes ids unique whatever the items; the slug makes them readable.

``${item}`` is the item's text (a string as itself, anything else as compact JSON);
``${item.KEY}`` the text of key ``KEY`` of an object item. They are given to the
instance's templates only (never put in the environment). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec

from . import subst
from .model import Plan, Step, base_id, instance_id

__all__ = [
    "ITEM",
    "SLUG_MAX",
    "FanoutError",
    "instance_ids",
    "instance_label",
    "instance_name",
    "is_item_name",
    "item_names",
    "item_text",
    "item_values",
    "missing_keys",
    "parse_items",
    "placeholders",
    "slug",
    "step_templates",
    "with_instances",
]

#: The name ``${item}`` gives its instance's item; ``${item.KEY}`` one of its keys.
ITEM = "item"
SLUG_MAX = 24
_NOT_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
_ITEM_KEY = re.compile(r"item\.(?P<key>[A-Za-z_][A-Za-z0-9_-]*)")


class FanoutError(ValueError):
    """The rendered ``for_each`` value cannot be expanded (the message says why)."""


def parse_items(text: str, what: str, max_items: int) -> list[Any]:
    """The items of ``text``, a JSON array of at most ``max_items`` items.

    ``what`` names where the text came from in the error (e.g. ``"output 'ITEMS' of
    step 'list'"``). Raises :class:`FanoutError` for text that is not JSON, JSON that
    is not an array, or an array that is too long.
    """
    try:
        value = msgspec.json.decode(text.encode())
    except (msgspec.DecodeError, RecursionError) as exc:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise FanoutError(
            f"for_each: {what} is not valid JSON ({exc}): {shown!r}; write a JSON array "
            'such as ["a", "b"]'
        ) from None
    if not isinstance(value, list):
        kind = {dict: "an object", str: "a string", bool: "a boolean"}.get(type(value))
        kind = kind or ("null" if value is None else "a number")
        raise FanoutError(f'for_each: {what} is {kind}, not a JSON array such as ["a", "b"]')
    if len(value) > max_items:
        raise FanoutError(
            f"for_each: {what} has {len(value)} items, more than max_items ({max_items}); "
            "raise max_items or produce fewer items"
        )
    return value


def item_text(item: Any) -> str:
    """What ``${item}`` becomes: a string item as itself, anything else as compact JSON."""
    if isinstance(item, str):
        return item
    return msgspec.json.encode(item).decode()


def slug(item: Any) -> str:
    """The item's text in ``[A-Za-z0-9._-]``, runs of other characters as one ``-``,
    trimmed of ``-`` at both ends, at most :data:`SLUG_MAX` characters. An object is
    known by its first string or number value (``{"id": "doc-17", ...}``: ``doc-17``),
    which reads better than its JSON."""
    if isinstance(item, dict):
        first = next((v for v in item.values() if _scalar(v)), None)
        item = first if first is not None else item
    return _NOT_SLUG.sub("-", item_text(item)).strip("-")[:SLUG_MAX].rstrip("-")


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def instance_label(index: int, item: Any, secret: Callable[[str], bool] | None = None) -> str:
    """``INDEX:SHORT`` (``0:doc-17``), or ``INDEX`` alone when the slug is empty or when
    ``secret`` says the item's text holds a secret (ids are stored and shown in clear)."""
    short = slug(item)
    if short and secret is not None and secret(item_text(item)):
        short = ""
    return f"{index}:{short}" if short else str(index)


def instance_ids(
    base: str, items: Sequence[Any], secret: Callable[[str], bool] | None = None
) -> list[str]:
    """The ids of ``base``'s instances for ``items``: stable, and unique by the index
    (``secret``: see :func:`instance_label`)."""
    return [instance_id(base, instance_label(i, item, secret)) for i, item in enumerate(items)]


def instance_name(step: Step, step_id: str) -> str:
    """The display name of instance ``step_id`` of ``step``: its name (or id) with the
    instance's ``[label]``."""
    return step.display_name + step_id[len(base_id(step_id)) :]


def is_item_name(name: str) -> bool:
    """``item`` or ``item.KEY``."""
    return name == ITEM or _ITEM_KEY.fullmatch(name) is not None


def item_values(item: Any) -> dict[str, str]:
    """The values an instance gives its templates: ``item``, and ``item.KEY`` for each
    key of an object item."""
    values = {ITEM: item_text(item)}
    if isinstance(item, dict):
        values.update({f"{ITEM}.{k}": item_text(v) for k, v in item.items()})
    return values


def step_templates(step: Step) -> Iterator[str]:
    """The templates of a step an item can be used in: command, args, env, cwd (and a
    ``uses`` step's ``with``)."""
    if step.command is not None:
        yield step.command
    yield from step.with_.values()
    yield from step.args
    yield from step.env.values()
    if step.cwd is not None:
        yield step.cwd


def item_names(step: Step) -> list[str]:
    """The ``item``/``item.KEY`` names ``step`` uses, once each, in order (templates
    that do not parse are left out: validation reports them)."""
    names: dict[str, None] = {}
    for template in step_templates(step):
        if "$" not in template:
            continue
        try:
            pieces = subst.parse(template)
        except subst.SubstError:
            continue
        names.update((p.name, None) for p in pieces if isinstance(p, subst.Ref))
    return [n for n in names if is_item_name(n)]


def placeholders(names: Sequence[str]) -> dict[str, str]:
    """Each name as its own ``${name}``: how the templates read before an item is given
    (``--dry-run``, the step's record)."""
    return {name: f"${{{name}}}" for name in names}


def missing_keys(names: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """The ``item.KEY`` names among ``names`` that an item's ``values`` do not give."""
    return [n for n in names if n not in values]


def with_instances(
    plan: Plan, steps: Sequence[tuple[str, str]], recorded: Iterable[str]
) -> list[tuple[str, str]]:
    """``steps`` (the plan's ``(id, name)``, in order) with, after each for_each step,
    its instances among the ``recorded`` step ids (a resumed run's rows, in order), so
    that a resume keeps their rows where they were."""
    by_base: dict[str, list[str]] = {}
    for sid in recorded:
        if base_id(sid) != sid:
            by_base.setdefault(base_id(sid), []).append(sid)
    groups = {s.id: s for s in plan.steps if s.for_each is not None}
    out: list[tuple[str, str]] = []
    for sid, name in steps:
        out.append((sid, name))
        if sid in groups:
            out += [(iid, instance_name(groups[sid], iid)) for iid in by_base.get(sid, ())]
    return out
