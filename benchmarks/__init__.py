"""pgpatterns benchmarks: each pattern measured against the naive form and hand-written SQL.

Run ``make bench`` (or ``python -m benchmarks --scale quick|default|large``).
"""
