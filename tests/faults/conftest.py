"""The fault-injection suite: real servers and processes, faults injected from outside."""

from __future__ import annotations

import pytest

from tests.integration.conftest import moto_endpoint  # noqa: F401  (a fixture, shared)

pytestmark = pytest.mark.integration
