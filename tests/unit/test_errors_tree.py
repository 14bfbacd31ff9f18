"""Every error class signalplay defines derives from `SignalplayError` (the tree `errors.py`'s
docstring draws), so that one `except SignalplayError` at an edge catches them all."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import signalplay
from signalplay.errors import SignalplayError


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(signalplay.__path__, prefix="signalplay."):
        if info.name in {"signalplay.worker"} or ".migrations" in info.name:
            continue  # the Celery app builds itself on import; migrations run under Alembic
        names.append(info.name)
    return names


def test_every_error_class_derives_from_signalplay_error() -> None:
    strays = []
    for name in _modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ != name or not issubclass(obj, BaseException):
                continue
            if not issubclass(obj, SignalplayError):
                strays.append(f"{name}.{obj.__qualname__}")
    assert strays == []


def test_the_walk_sees_the_connectors_and_the_stand_ins() -> None:
    names = set(_modules())
    assert {"signalplay.connectors._http", "signalplay.sandbox.hubspot"} <= names
