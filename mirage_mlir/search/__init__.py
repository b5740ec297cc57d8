"""The mu-graph superoptimizer (Mirage, OSDI 2025): generator, abstract-expression pruning, canonical
forms, cost model, disk cache and a parallel driver. Entry point: `superoptimize(graph, options)`."""

from .driver import SearchOptions, SearchResult, SearchStats, superoptimize

__all__ = ["SearchOptions", "SearchResult", "SearchStats", "superoptimize"]
