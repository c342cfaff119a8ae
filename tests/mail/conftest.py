"""Fixtures of the mail tests."""

import pytest

from support.mailnode import Node


@pytest.fixture
def node(db_url, tmp_path):
    """A CKS node on a fresh database (both backends), its schema created."""
    made = Node(db_url, tmp_path / "node")
    made.manage("list")
    return made
