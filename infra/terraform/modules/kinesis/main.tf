# The events stream the producer puts on and the pipeline reads: provisioned shards, as the tier sizes them.
variable "name" {
  type = string
}

variable "shard_count" {
  type = number
}

resource "aws_kinesis_stream" "events" {
  name             = var.name
  shard_count      = var.shard_count
  retention_period = 24
  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

output "name" {
  value = aws_kinesis_stream.events.name
}

output "arn" {
  value = aws_kinesis_stream.events.arn
}
