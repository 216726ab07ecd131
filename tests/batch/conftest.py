"""Fixtures for batch tests: a scripted OpenAI-shaped server, stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fakeapi import ScriptedServer, start_server


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    running = start_server(scripted)
    yield scripted
    running.stop()
