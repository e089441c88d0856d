# Amazon S3 Tables: one table bucket and the `cryptoflow` namespace. The tables themselves are created
# by the collectors through the Iceberg REST endpoint (pyiceberg create_table), so schema, partition
# spec and sort order stay defined in one place: cryptoflow/schemas.py.
#
# The collectors expire snapshots themselves (sink.expire_every_commits, docs/exactly-once.md) but
# delete no files; the bucket's unreferenced file removal deletes what expired snapshots leave behind
# (manifest lists, manifests, old metadata.json). Table-level snapshot management is per table and the
# tables are not Terraform's: see docs/exactly-once.md for the one CLI call per table.
variable "bucket_name" { type = string }
variable "unreferenced_days" {
  type    = number
  default = 3
}
variable "non_current_days" {
  type    = number
  default = 10
}
variable "namespace" {
  type    = string
  default = "cryptoflow"
}

resource "aws_s3tables_table_bucket" "this" {
  name = var.bucket_name
  maintenance_configuration = {
    iceberg_unreferenced_file_removal = {
      status = "enabled"
      settings = {
        unreferenced_days = var.unreferenced_days
        non_current_days  = var.non_current_days
      }
    }
  }
}

resource "aws_s3tables_namespace" "this" {
  namespace        = var.namespace
  table_bucket_arn = aws_s3tables_table_bucket.this.arn
}

output "table_bucket_arn" { value = aws_s3tables_table_bucket.this.arn }
output "namespace" { value = aws_s3tables_namespace.this.namespace }
