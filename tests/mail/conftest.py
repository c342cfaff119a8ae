"""Fixtures of the mail tests."""

import pytest

from support.db import with_schema
from support.mailnode import Node


@pytest.fixture
def node(db_url, tmp_path):
    """A CKS node on a fresh database (both backends), its schema created."""
    return Node(with_schema(db_url), tmp_path / "node")
