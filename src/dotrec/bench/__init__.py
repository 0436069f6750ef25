"""Benchmark harnesses: the serving-cost benchmark and the HTTP load test.

Kept out of the library's core (models, retrieval, serving): they measure the machine (memory
bandwidth, load average), draw plots and spawn CLI processes. The CLI imports them only when
``dotrec bench`` runs; ``benchmarks/`` scripts use them directly.
"""
