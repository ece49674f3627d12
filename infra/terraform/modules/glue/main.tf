# The Glue catalog database the Iceberg tables are registered in.
variable "database" {
  type = string
}

resource "aws_glue_catalog_database" "catalog" {
  name = var.database
}

output "name" {
  value = aws_glue_catalog_database.catalog.name
}
