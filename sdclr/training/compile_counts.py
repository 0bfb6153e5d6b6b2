"""What the compiler has done in this process: graphs compiled and graph breaks met, read from
dynamo's counters once per epoch (off the hot path). A compiled run records them per epoch
(``timing.csv``), so a GPU run shows that its step compiled once per batch shape and then ran
without recompiling or breaking its graph."""

from __future__ import annotations

from torch._dynamo.utils import counters


def compile_counts() -> dict[str, int]:
    """``compiled_graphs``: graphs dynamo compiled in this process so far (a recompilation
    adds one); ``graph_breaks``: the graph breaks it met (each splits a graph in two)."""
    return {
        "compiled_graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
    }


def counts_since(start: dict[str, int]) -> dict[str, int]:
    """:func:`compile_counts` less ``start`` (an earlier reading): what this run compiled."""
    now = compile_counts()
    return {key: now[key] - start.get(key, 0) for key in now}
