"""The reduced method test on the `stage` family (issue 25): the claim must hold beyond the generator the recipe
was tuned on. A file of its own so that pytest-xdist runs it beside the default family's, not after it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_method_ordering import assert_ordering


@pytest.mark.slow
def test_stage_image_only_student_learns_and_the_distilled_student_beats_it(tmp_path: Path):
    assert_ordering(tmp_path, "stage")
