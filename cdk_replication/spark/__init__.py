"""Verify two tables from their native DynamoDB exports on Apache Spark (locally or as an AWS Glue job).

Nothing here imports ``aws_cdk``, and only :mod:`cdk_replication.spark.compare` and
:mod:`cdk_replication.spark.job` import ``pyspark`` (the optional extra ``spark``): the export layout
(:mod:`cdk_replication.spark.layout`) and the per-line digest (:mod:`cdk_replication.spark.lines`) are plain
Python, so the CLI can name the missing extra instead of failing on an import. The Glue job ships this folder
with :mod:`cdk_replication.cli.items` (the single-machine ``verify``'s definition of equality), so both compare
items with the same code.
"""
