"""cdk-replication: AWS CDK constructs that keep Amazon DynamoDB tables replicated across regions and
accounts."""
