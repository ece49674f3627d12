"""The alert API: AWS Lambda handlers for an API Gateway HTTP API (payload format 2.0) over the DynamoDB
alerts table (``pipeline.tables.DynamoTableDef``), queried through its indexes, never scanned.

``pipeline.api.app.handler`` is the Lambda entry point; ``coattail api serve`` puts the same handlers
behind a local HTTP adapter. Routes, parameters and fields: ``docs/API.md`` and ``docs/openapi.yaml``.
"""
