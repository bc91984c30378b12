"""The layered layout: layers by longest path, routed long edges, fewer crossings, no overlap."""

import itertools

import numpy as np
import pytest

from engine.graph_layout import H_GAP, _closest_ordered, crossings, layered_layout


def centre_x(box, size):
    return box[0] + size[0] / 2


def test_every_input_sits_above_the_op_that_uses_it_in_its_longest_path_layer():
    #   0 -> 2 -> 3 -> 4,  1 -> 4: node 1 goes just above 4, node 0 three layers higher
    sizes = [(40, 20), (40, 20), (60, 30), (50, 20), (40, 20)]
    edges = [(0, 2, 0.5, 0.5), (2, 3, 0.5, 0.5), (3, 4, 0.5, 0.3), (1, 4, 0.5, 0.7)]
    boxes, routes, width, height = layered_layout(sizes, edges)
    middles = [y + h / 2 for (_, y), (_, h) in zip(boxes, sizes)]   # one per layer
    layer = [sorted(set(middles)).index(m) for m in middles]
    assert layer == [0, 2, 1, 2, 3]                 # 1 sits right above 4, not at the top
    ys = [y for _, y in boxes]
    for s, t, _, _ in edges:
        assert ys[s] + sizes[s][1] < ys[t]
    assert all(route == [] for route in routes)     # no edge spans more than one layer
    assert width >= max(x + w for (x, _), (w, _) in zip(boxes, sizes))
    assert height >= max(y + h for (_, y), (_, h) in zip(boxes, sizes))


def test_a_long_edge_is_routed_through_each_layer_it_crosses_and_shares_its_source_bus():
    # 0 feeds 1 -> 2 -> 3 -> 4 at 1 and at 4: the long edge passes the layers of 2 and 3;
    # a second long edge from 0 to 3 shares the points of the first in the layer of 2
    sizes = [(30, 20)] * 5
    edges = [(0, 1, 0.5, 0.5), (1, 2, 0.5, 0.5), (2, 3, 0.5, 0.3), (3, 4, 0.5, 0.3),
             (0, 4, 0.5, 0.7), (0, 3, 0.5, 0.7)]
    boxes, routes, _, _ = layered_layout(sizes, edges)
    assert len(routes[4]) == 6 and len(routes[5]) == 4
    assert routes[5] == routes[4][:4]
    for (x, y), (x2, y2) in zip(routes[4][::2], routes[4][1::2]):
        assert x == x2 and y < y2                   # a vertical run inside each layer
        for (bx, by), (w, h) in zip(boxes, sizes):  # beside, never through, a box
            assert not (bx <= x <= bx + w and y < by + h and by < y2)


def test_the_sweeps_remove_an_avoidable_crossing():
    # in index order the two edges cross (0 above-left of 3, 1 above-right of 2)
    sizes = [(40, 20)] * 4
    edges = [(0, 3, 0.5, 0.5), (1, 2, 0.5, 0.5)]
    assert crossings([[0, 1], [2, 3]], edges) == 1
    boxes, _, _, _ = layered_layout(sizes, edges)
    x = [centre_x(b, s) for b, s in zip(boxes, sizes)]
    assert (x[0] < x[1]) == (x[3] < x[2])


def test_crossings_counts_pairs_of_links_whose_ends_are_in_opposite_orders():
    layers = [[0, 1, 2], [3, 4, 5]]
    links = [(0, 5, 0.5, 0.5), (1, 4, 0.5, 0.5), (2, 3, 0.5, 0.5)]
    assert crossings(layers, links) == 3             # every pair crosses
    assert crossings(layers, [(0, 3, 0.2, 0.5), (0, 3, 0.8, 0.5)]) == 0


def test_boxes_of_one_layer_keep_their_gap():
    sizes = [(70, 20), (30, 20), (90, 20), (40, 20), (20, 20)]
    edges = [(k, 4, 0.5, (k + 1) / 5) for k in range(4)]
    boxes, _, _, _ = layered_layout(sizes, edges)
    row = sorted((x, w) for (x, _), (w, _) in zip(boxes[:4], sizes[:4]))
    for (x0, w0), (x1, _) in zip(row[:-1], row[1:]):
        assert x1 - (x0 + w0) >= H_GAP - 1e-9


def test_closest_ordered_is_the_least_squares_placement_that_keeps_the_gaps():
    widths = [20.0, 40.0, 10.0, 30.0]
    feasible = [0.0, 100.0, 200.0, 300.0]
    assert _closest_ordered(feasible, widths) == pytest.approx(feasible)
    wishes = [50.0, 10.0, 40.0, 300.0]
    got = np.array(_closest_ordered(wishes, widths))
    gaps = np.array([(a + b) / 2 + H_GAP for a, b in zip(widths[:-1], widths[1:])])
    assert np.all(np.diff(got) >= gaps - 1e-9)
    best = np.inf       # brute force: each gap tight or not, the rest solved exactly
    for tight in itertools.product([True, False], repeat=3):
        starts = [0] + [k + 1 for k, t in enumerate(tight) if not t]
        cand = np.empty(4)
        for a, b in zip(starts, starts[1:] + [4]):
            offs = np.concatenate([[0.0], np.cumsum(gaps[a:b - 1])])
            cand[a:b] = np.mean(np.array(wishes[a:b]) - offs) + offs
        if np.all(np.diff(cand) >= gaps - 1e-9):
            best = min(best, float(np.sum((cand - wishes) ** 2)))
    assert float(np.sum((got - wishes) ** 2)) == pytest.approx(best)


def test_a_cycle_is_rejected():
    with pytest.raises(ValueError, match="layered_layout: the graph has a cycle"):
        layered_layout([(10, 10)] * 2, [(0, 1, 0.5, 0.5), (1, 0, 0.5, 0.5)])
