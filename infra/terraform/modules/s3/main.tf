# The lakehouse (Iceberg warehouse) and streaming checkpoint buckets: each distinct name once.
variable "buckets" {
  type = list(string)
}

resource "aws_s3_bucket" "lakehouse" {
  for_each = toset(var.buckets)
  bucket   = each.value
}

output "buckets" {
  value = [for b in aws_s3_bucket.lakehouse : b.bucket]
}
