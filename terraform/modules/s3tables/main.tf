# Amazon S3 Tables: one table bucket and the `cryptoflow` namespace. The tables themselves are created
# by the collectors through the Iceberg REST endpoint (pyiceberg create_table), so schema, partition
# spec and sort order stay defined in one place: cryptoflow/schemas.py.
variable "bucket_name" { type = string }
variable "namespace" {
  type    = string
  default = "cryptoflow"
}

resource "aws_s3tables_table_bucket" "this" {
  name = var.bucket_name
}

resource "aws_s3tables_namespace" "this" {
  namespace        = var.namespace
  table_bucket_arn = aws_s3tables_table_bucket.this.arn
}

output "table_bucket_arn" { value = aws_s3tables_table_bucket.this.arn }
output "namespace" { value = aws_s3tables_namespace.this.namespace }
