"""NUL characters in API paths or parameters are a 400 on both backends (PostgreSQL refuses them in queries)."""

from __future__ import annotations

import pytest

from tests.conftest import Stack


@pytest.mark.parametrize(
    "path",
    ["/events/%00abc", "/runs/a%00b/events", "/projects/python/issues?environment=a%00b", "/projects/a%00/issues"],
)
def test_nul_in_path_or_parameters_is_a_client_error(stack: Stack, path: str) -> None:
    response = stack.client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {stack.token}"})
    assert response.status_code == 400, response.text
