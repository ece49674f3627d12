output "stream_name" {
  value = aws_kinesis_stream.events.name
}

output "stream_arn" {
  value = aws_kinesis_stream.events.arn
}

output "alerts_table" {
  value = aws_dynamodb_table.alerts.name
}

output "warehouse_bucket" {
  value = aws_s3_bucket.warehouse.bucket
}

output "checkpoint_bucket" {
  value = aws_s3_bucket.checkpoints.bucket
}

output "glue_database" {
  value = aws_glue_catalog_database.catalog.name
}

output "emr_application_id" {
  value = aws_emrserverless_application.pipeline.id
}
