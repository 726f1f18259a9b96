"""Start-up (issue 16): the plan model's field types are objects, not strings. msgspec
reads them the first time it decodes a plan; string annotations (``from __future__
import annotations``) are then compiled and evaluated one by one, in every validate
and every run."""

from __future__ import annotations

import inspect

import msgspec
import pytest

from planrun import model, model_triggers


def _structs() -> list[type[msgspec.Struct]]:
    return [
        cls
        for module in (model, model_triggers)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, msgspec.Struct) and cls.__module__ == module.__name__
    ]


def test_the_model_has_structs() -> None:
    names = {cls.__name__ for cls in _structs()}
    assert {"Plan", "Step", "Trigger"} <= names


@pytest.mark.parametrize("struct", _structs(), ids=lambda cls: cls.__name__)
def test_field_types_are_not_strings(struct: type[msgspec.Struct]) -> None:
    own = vars(struct).get("__annotations__", {})
    assert [name for name, hint in own.items() if isinstance(hint, str)] == []
