"""Chaos convergence suite: property-based runs of a MULTI_ACTIVE topology on DynamoDB Local (docs/chaos.md)."""
