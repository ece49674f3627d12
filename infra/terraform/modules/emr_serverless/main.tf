# The Spark pipeline's EMR Serverless application: pre-initialized driver and executors, and a ceiling.
variable "name" {
  type = string
}

variable "release" {
  type = string
}

# Keyed by worker type (Driver, Executor): how many to keep initialized, and each one's size.
variable "initial_capacity" {
  type = map(object({ worker_count = number, cpu = string, memory = string, disk = string }))
}

variable "maximum_capacity" {
  type = object({ cpu = string, memory = string, disk = string })
}

resource "aws_emrserverless_application" "pipeline" {
  name          = var.name
  release_label = var.release
  type          = "spark"

  dynamic "initial_capacity" {
    for_each = var.initial_capacity
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
    cpu    = var.maximum_capacity.cpu
    memory = var.maximum_capacity.memory
    disk   = var.maximum_capacity.disk
  }
}

output "id" {
  value = aws_emrserverless_application.pipeline.id
}
