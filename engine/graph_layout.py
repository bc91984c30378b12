"""A layered (Sugiyama-style) layout of a directed acyclic graph, for :func:`draw_graph`.

Boxes of given sizes and edges ``source -> target`` (an input above the op that uses it):

1. layers by longest path: a node with no outgoing edge sits in the bottom layer, every
   other node one layer above the highest of its targets;
2. an edge that spans several layers gets one invisible dummy node per layer it crosses,
   so that it is routed between the boxes; edges from one source share their dummies;
3. the order within each layer: barycentre sweeps (each node moves to the mean position of
   its neighbours in the layer below, then above), keeping the order with the fewest
   crossings;
4. x coordinates: each node wants the mean x of its neighbours' ports; the positions
   closest to those wishes that keep the order and a gap between boxes are the isotonic
   regression of the wishes (pool adjacent violators), a few passes up and down.
"""

from __future__ import annotations

from bisect import bisect_right

H_GAP = 28.0        # horizontal space between boxes
V_GAP = 44.0        # vertical space between layers
DUMMY_WIDTH = 10.0  # the width a routed edge takes in a layer it crosses
SWEEPS = 6
PASSES = 8


def layered_layout(sizes, edges, margin: float = 16.0):
    """Positions for ``sizes`` (``(w, h)`` per node) joined by ``edges``.

    ``edges``: ``(source, target, source_port, target_port)``, node indices and the
    fraction of the box width where the edge leaves the source's bottom side and enters
    the target's top side. Returns ``(boxes, routes, width, height)``: ``boxes[v] = (x, y)``
    of the top-left corner; ``routes[e]``: the points an edge passes through between its
    ends, top to bottom.
    """
    n = len(sizes)
    rank = _ranks(n, edges)
    widths = [w for w, _ in sizes]
    # each edge becomes a chain: source, one dummy per layer crossed, target; the edges that
    # leave one source share their dummies (a bus), so a tensor used at every step of a
    # long loop, or split into one piece per step, takes one column, not one per use
    chains, bus = [], {}
    for s, t, ps, pt in edges:
        chain = [s]
        for r in range(rank[s] - 1, rank[t], -1):
            if (s, r) not in bus:
                bus[s, r] = len(widths)
                widths.append(DUMMY_WIDTH)
                rank.append(r)
            chain.append(bus[s, r])
        chain.append(t)
        chains.append((chain, ps, pt))
    # links between consecutive layers: (upper, lower, upper port, lower port), each once
    links = {}
    for chain, ps, pt in chains:
        for k, (a, b) in enumerate(zip(chain[:-1], chain[1:])):
            links[a, b, ps if k == 0 else 0.5, pt if k == len(chain) - 2 else 0.5] = None
    links = list(links)
    top = max(rank, default=0)
    layers = [[] for _ in range(top + 1)]          # layer 0 at the top
    for v in range(len(widths)):
        layers[top - rank[v]].append(v)
    _order(layers, links, widths)
    centres = _place(layers, links, widths, n)
    heights = [max((sizes[v][1] for v in layer if v < n), default=0.0) for layer in layers]
    boxes, routes = [None] * n, []
    y_top, layer_y = margin, []
    for layer, h in zip(layers, heights):
        layer_y.append((y_top, h))
        for v in layer:
            if v < n:
                w, hv = sizes[v]
                boxes[v] = (centres[v] - w / 2, y_top + (h - hv) / 2)
        y_top += h + V_GAP
    for chain, _, _ in chains:
        route = []
        for v in chain[1:-1]:
            y, h = layer_y[top - rank[v]]
            route += [(centres[v], y), (centres[v], y + h)]
        routes.append(route)
    shift = margin - min([x for x, _ in boxes] + [c - DUMMY_WIDTH / 2 for c in centres[n:]],
                         default=margin)
    boxes = [(x + shift, y) for x, y in boxes]
    routes = [[(x + shift, y) for x, y in route] for route in routes]
    width = max([x + sizes[v][0] for v, (x, _) in enumerate(boxes)] +
                [x for route in routes for x, _ in route], default=0.0) + margin
    return boxes, routes, width, y_top - V_GAP + margin


def _ranks(n: int, edges) -> list[int]:
    """Longest path to a sink, by Kahn's algorithm run from the sinks upwards."""
    inputs = [[] for _ in range(n)]
    outdegree = [0] * n
    for s, t, _, _ in edges:
        inputs[t].append(s)
        outdegree[s] += 1
    rank = [0] * n
    stack = [v for v in range(n) if outdegree[v] == 0]
    while stack:
        v = stack.pop()
        for s in inputs[v]:
            rank[s] = max(rank[s], rank[v] + 1)
            outdegree[s] -= 1
            if outdegree[s] == 0:
                stack.append(s)
    if any(outdegree):
        raise ValueError("layered_layout: the graph has a cycle")
    return rank


def crossings(layers, links) -> int:
    """Edge crossings between consecutive layers (inversions of the lower positions)."""
    pos, row = {}, {}
    for r, layer in enumerate(layers):
        for i, v in enumerate(layer):
            pos[v], row[v] = i, r
    by_row = {}
    for a, b, pa, pb in links:
        by_row.setdefault(row[a], []).append((pos[a] + 0.9 * pa, pos[b] + 0.9 * pb))
    total = 0
    for pairs in by_row.values():
        pairs.sort()
        seen = []                                  # lower ends so far, sorted
        for _, lower in pairs:
            k = bisect_right(seen, lower)
            total += len(seen) - k
            seen.insert(k, lower)
    return total


def _order(layers, links, widths) -> None:
    """Barycentre sweeps in place; keeps the ordering with the fewest crossings."""
    above = [[] for _ in widths]                   # (neighbour, its port, my port)
    below = [[] for _ in widths]
    for a, b, pa, pb in links:
        below[a].append((b, pb, pa))
        above[b].append((a, pa, pb))
    best, best_count = [list(layer) for layer in layers], crossings(layers, links)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 1
        rows = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for r in rows:
            ref = layers[r - 1] if downward else layers[r + 1]
            pos = {v: i for i, v in enumerate(ref)}
            nbrs = above if downward else below
            keys = {}
            for i, v in enumerate(layers[r]):
                ks = [pos[u] + pu - 0.5 for u, pu, _ in nbrs[v]]
                keys[v] = (sum(ks) / len(ks) if ks else i, i)
            layers[r].sort(key=keys.__getitem__)
        count = crossings(layers, links)
        if count < best_count:
            best, best_count = [list(layer) for layer in layers], count
    layers[:] = best


def _place(layers, links, widths, n: int) -> list[float]:
    """x of each node's centre: wishes from the neighbours, then the closest legal order.

    A dummy (index >= ``n``) follows only its bus, not the boxes that branch off it, so
    that a bus runs straight.
    """
    centres = [0.0] * len(widths)
    for layer in layers:
        x = 0.0
        for v in layer:
            centres[v] = x + widths[v] / 2
            x += widths[v] + H_GAP
        for v in layer:                            # centre each layer on x = 0
            centres[v] -= x / 2
    nbrs = [[] for _ in widths]                    # (neighbour, its port, my port)
    for a, b, pa, pb in links:
        if a < n or b >= n:
            nbrs[a].append((b, pb, pa))
        nbrs[b].append((a, pa, pb))
    for p in range(PASSES):
        rows = layers if p % 2 == 0 else layers[::-1]
        for layer in rows:
            wishes = []
            for v in layer:
                xs = [centres[u] + (pu - 0.5) * widths[u] - (pv - 0.5) * widths[v]
                      for u, pu, pv in nbrs[v]]
                wishes.append(sum(xs) / len(xs) if xs else centres[v])
            for v, x in zip(layer, _closest_ordered(wishes, [widths[v] for v in layer])):
                centres[v] = x
    return centres


def _closest_ordered(wishes, widths) -> list[float]:
    """argmin Σ (cᵢ - wishᵢ)² subject to cᵢ₊₁ - cᵢ ≥ (wᵢ + wᵢ₊₁)/2 + H_GAP.

    With oᵢ the smallest offsets allowed, yᵢ = cᵢ - oᵢ must be non-decreasing: the
    isotonic regression of wishᵢ - oᵢ, by pooling adjacent violators into their mean.
    """
    offsets = [0.0]
    for w0, w1 in zip(widths[:-1], widths[1:]):
        offsets.append(offsets[-1] + (w0 + w1) / 2 + H_GAP)
    blocks = []                                    # [mean, count]
    for wish, o in zip(wishes, offsets):
        blocks.append([wish - o, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m1, c1 = blocks.pop()
            m0, c0 = blocks.pop()
            blocks.append([(m0 * c0 + m1 * c1) / (c0 + c1), c0 + c1])
    ys = [m for m, c in blocks for _ in range(c)]
    return [y + o for y, o in zip(ys, offsets)]
