# -*- coding: utf-8 -*-
"""Locate the repository's shared test fixtures (tests/fixtures/...) from a unit test.

They live at the repository root, outside the collection, so an ansible-test copy of the
collection does not have them: callers skip their tests when ``fixture_dir`` returns None.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os


def fixture_dir(name, marker):
    """tests/fixtures/<name> of the enclosing checkout, recognised by ``marker`` inside it; None if absent."""
    folder = os.path.dirname(os.path.abspath(__file__))
    while True:
        candidate = os.path.join(folder, "tests", "fixtures", name)
        if os.path.exists(os.path.join(candidate, marker)):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def load_json(folder, name):
    with open(os.path.join(folder, name)) as handle:
        return json.load(handle)
