"""``cdk-replication redrive``: bring the items named by failed stream batches right, from SOURCE's current state.

Modules: :mod:`.failure_records` (AWS's on-failure record), :mod:`.locations` (S3, a folder, SQS; markers),
:mod:`.stream_ranges` (re-reading a batch's range from the stream), :mod:`.changes` (the keys a batch names),
:mod:`.resync` (one key to every target), :mod:`.run` (the whole run), :mod:`.report` (text and JSON),
:mod:`.parser` and :mod:`.command` (the command line). The multi-active resync of one key is
:mod:`.multi_active`'s.
"""
