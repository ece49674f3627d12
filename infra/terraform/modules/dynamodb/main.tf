# The alerts table: one item per alert_id, TTL, and the indexes the alert API queries (pipeline/tables.py).
variable "name" {
  type = string
}

variable "hash_key" {
  type = string
}

# Every attribute used in the table's or an index's key, with its DynamoDB type (S or N).
variable "attributes" {
  type = map(string)
}

variable "indexes" {
  type = list(object({ name = string, hash_key = string, range_key = string }))
}

variable "ttl_attribute" {
  type = string
}

resource "aws_dynamodb_table" "alerts" {
  name         = var.name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = var.hash_key

  dynamic "attribute" {
    for_each = var.attributes
    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "global_secondary_index" {
    for_each = var.indexes
    content {
      name            = global_secondary_index.value.name
      hash_key        = global_secondary_index.value.hash_key
      range_key       = global_secondary_index.value.range_key
      projection_type = "ALL"
    }
  }

  ttl {
    attribute_name = var.ttl_attribute
    enabled        = true
  }
}

# Throttled writes lose nothing (the sink's client retries) but delay alerts: worth a page.
module "throttles" {
  source     = "../alarm"
  name       = "${var.name}-throttles"
  namespace  = "AWS/DynamoDB"
  metric     = "ThrottledRequests"
  dimensions = { TableName = var.name }
}

output "name" {
  value = aws_dynamodb_table.alerts.name
}

output "arn" {
  value = aws_dynamodb_table.alerts.arn
}
