# Filled from the tier config: tiers/<tier>.tfvars.json, written by `python -m infra.tfvars --write`,
# so the AWS tiers get exactly the resources the local stack provisions (infra/provision.py).
variable "tier" {
  type = string
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "stream_name" {
  type = string
}

variable "shard_count" {
  type = number
}

variable "alerts_table" {
  type = string
}

variable "alerts_key" {
  type = string
}

variable "alerts_attributes" {
  type = map(string)
}

variable "alerts_indexes" {
  type = list(object({ name = string, hash_key = string, range_key = string }))
}

variable "ttl_attribute" {
  type = string
}

variable "buckets" {
  type = list(string)
}

variable "warehouse_bucket" {
  type = string
}

variable "checkpoint_bucket" {
  type = string
}

variable "glue_database" {
  type = string
}

# EMR Serverless sizes workers, not instances: "4 vCPU", "16 GB", "20 GB" (checked by pipeline/config.py).
variable "emr_release" {
  type = string
}

# Keyed by worker type (Driver, Executor): how many to keep initialized, and each one's size.
variable "emr_initial_capacity" {
  type = map(object({ worker_count = number, cpu = string, memory = string, disk = string }))
}

variable "emr_maximum_capacity" {
  type = object({ cpu = string, memory = string, disk = string })
}

variable "api_handler" {
  type = string
}

# The Lambda runtime: the Python of the tier's EMR release, so the API runs what the pipeline runs.
variable "api_runtime" {
  type = string
}

variable "api_routes" {
  type = list(string)
}

variable "api_package" {
  description = "Path of the alert API's Lambda zip, built by the deploy (not part of the tier)."
  type        = string
  default     = "build/alert-api.zip"
}
