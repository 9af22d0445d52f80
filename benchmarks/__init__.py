"""Performance runs of the replicator and the backfill on DynamoDB Local (``python -m benchmarks``).

Not part of the test suite: pytest collects ``tests/`` only. See ``benchmarks/README.md`` for the method.
"""
