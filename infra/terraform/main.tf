# The AWS side of the `aws` profile: the same resources as the local stack's spec, one tier per workspace.
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = { project = "coattail", tier = var.tier }
  }
}

resource "aws_kinesis_stream" "events" {
  name             = var.stream_name
  shard_count      = var.shard_count
  retention_period = 24
  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

resource "aws_dynamodb_table" "alerts" {
  name         = var.alerts_table
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = var.alerts_key

  attribute {
    name = var.alerts_key
    type = var.alerts_key_type
  }
  attribute {
    name = var.index_partition
    type = var.index_partition_type
  }
  attribute {
    name = var.index_sort
    type = var.index_sort_type
  }

  global_secondary_index {
    name            = var.symbol_index
    hash_key        = var.index_partition
    range_key       = var.index_sort
    projection_type = "ALL"
  }

  ttl {
    attribute_name = var.ttl_attribute
    enabled        = true
  }
}

resource "aws_s3_bucket" "warehouse" {
  bucket = var.warehouse_bucket
}

resource "aws_s3_bucket" "checkpoints" {
  bucket = var.checkpoint_bucket
}

resource "aws_glue_catalog_database" "catalog" {
  name = var.glue_database
}

# The Spark pipeline's EMR Serverless application: pre-initialized driver and executors, and a ceiling.
resource "aws_emrserverless_application" "pipeline" {
  name          = "coattail-${var.tier}"
  release_label = var.emr_release
  type          = "spark"

  dynamic "initial_capacity" {
    for_each = var.emr_initial_capacity
    content {
      initial_capacity_type = initial_capacity.key
      initial_capacity_config {
        worker_count = initial_capacity.value.worker_count
        worker_configuration {
          cpu    = initial_capacity.value.cpu
          memory = initial_capacity.value.memory
          disk   = initial_capacity.value.disk
        }
      }
    }
  }

  maximum_capacity {
    cpu    = var.emr_maximum_capacity.cpu
    memory = var.emr_maximum_capacity.memory
    disk   = var.emr_maximum_capacity.disk
  }
}
