output "stream_name" {
  value = module.kinesis.name
}

output "stream_arn" {
  value = module.kinesis.arn
}

output "alerts_table" {
  value = module.dynamodb.name
}

output "warehouse_bucket" {
  value = var.warehouse_bucket
}

output "checkpoint_bucket" {
  value = var.checkpoint_bucket
}

output "glue_database" {
  value = module.glue.name
}

output "emr_application_id" {
  value = module.emr_serverless.id
}

output "alert_api_url" {
  value = module.api.url
}
