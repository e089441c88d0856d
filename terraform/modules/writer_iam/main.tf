# Least-privilege policy for collectors: read/write tables in one table bucket, the ledger table.
variable "table_bucket_arn" { type = string }
variable "ledger_table_arn" {
  type    = string
  default = null
}
variable "role_name" { type = string }
variable "assume_role_policy" {
  type        = string
  description = "Trust policy JSON (e.g. EKS IRSA for the collectors' service account)"
}

data "aws_iam_policy_document" "writer" {
  statement {
    sid = "S3TablesReadWrite"
    actions = [
      "s3tables:GetTableBucket", "s3tables:GetNamespace", "s3tables:ListNamespaces", "s3tables:CreateNamespace",
      "s3tables:GetTable", "s3tables:ListTables", "s3tables:CreateTable", "s3tables:GetTableMetadataLocation",
      "s3tables:UpdateTableMetadataLocation", "s3tables:GetTableData", "s3tables:PutTableData",
    ]
    resources = [var.table_bucket_arn, "${var.table_bucket_arn}/*"]
  }
  dynamic "statement" {
    for_each = var.ledger_table_arn == null ? [] : [var.ledger_table_arn]
    content {
      sid       = "Ledger"
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role" "writer" {
  name               = var.role_name
  assume_role_policy = var.assume_role_policy
}

resource "aws_iam_role_policy" "writer" {
  name   = "cryptoflow-writer"
  role   = aws_iam_role.writer.id
  policy = data.aws_iam_policy_document.writer.json
}

output "role_arn" { value = aws_iam_role.writer.arn }
