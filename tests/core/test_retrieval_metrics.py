"""Retrieval metrics against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipdesk.eval.metrics import average_precisions, mean_average_precision, recall_at_k


def test_average_precision_by_hand():
    # Ranking of 5 candidates: relevant at ranks 1, 3 and 5 -> AP = (1/1 + 2/3 + 3/5) / 3 = 0.7556
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    relevant = np.array([[True, False, True, False, True]])
    assert average_precisions(scores, relevant)[0] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # Cut at k=3: hits at 1 and 3 -> (1 + 2/3) / min(3, 3) = 0.5556
    assert average_precisions(scores, relevant, k=3)[0] == pytest.approx((1 + 2 / 3) / 3)
    # Cut at k=2 with 3 relevant: (1) / min(2, 3) = 0.5
    assert average_precisions(scores, relevant, k=2)[0] == pytest.approx(0.5)


def test_order_comes_from_the_scores_not_the_columns():
    scores = np.array([[0.1, 0.9, 0.5]])  # ranks: col1, col2, col0
    relevant = np.array([[True, False, False]])  # the relevant one is ranked last -> AP = 1/3
    assert average_precisions(scores, relevant)[0] == pytest.approx(1 / 3)
    assert recall_at_k(scores, relevant, ks=(1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 1.0}


def test_the_query_itself_is_excluded():
    scores = np.array([[1.0, 0.2, 0.9]])  # the query is candidate 0, its copy is candidate 2
    relevant = np.array([[True, False, True]])
    exclude = np.array([[True, False, False]])
    assert average_precisions(scores, relevant, exclude=exclude)[0] == pytest.approx(1.0)
    assert recall_at_k(scores, relevant, ks=(1,), exclude=exclude) == {1: 1.0}


def test_mean_over_queries_skips_those_without_relevant_items():
    scores = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.4]])
    relevant = np.array([[True, False], [False, True], [False, False]])
    assert math.isnan(average_precisions(scores, relevant)[2])
    assert mean_average_precision(scores, relevant, k=None) == pytest.approx((1.0 + 0.5) / 2)
    assert recall_at_k(scores, relevant, ks=(1,)) == {1: 0.5}


def test_shapes_must_match():
    with pytest.raises(ValueError):
        mean_average_precision(np.zeros((2, 3)), np.zeros((2, 2), bool))
