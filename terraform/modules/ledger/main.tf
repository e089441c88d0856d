# Optional DynamoDB commit ledger (fence + audit log: pending -> committed, reconciled against the
# table's snapshot summaries, which stay the source of truth).
variable "table_name" { type = string }

resource "aws_dynamodb_table" "ledger" {
  name         = var.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "writer_id"
  range_key    = "seq"

  attribute {
    name = "writer_id"
    type = "S"
  }
  attribute {
    name = "seq"
    type = "N"
  }
  point_in_time_recovery { enabled = true }
}

output "table_name" { value = aws_dynamodb_table.ledger.name }
output "table_arn" { value = aws_dynamodb_table.ledger.arn }
