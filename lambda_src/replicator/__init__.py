"""The replicator Lambda: DynamoDB stream records in, writes to the other copies out (handler: replicator.handler.handler)."""
