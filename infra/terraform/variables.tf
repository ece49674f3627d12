# Filled from the tier config by `python -m infra.tfvars --tier <tier> > <tier>.tfvars.json`,
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

variable "alerts_key_type" {
  type = string
}

variable "ttl_attribute" {
  type = string
}

variable "symbol_index" {
  type = string
}

variable "index_partition" {
  type = string
}

variable "index_partition_type" {
  type = string
}

variable "index_sort" {
  type = string
}

variable "index_sort_type" {
  type = string
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
