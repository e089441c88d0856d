terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80"
    }
  }
}

provider "aws" { region = var.region }

variable "region" {
  type    = string
  default = "us-east-1"
}
variable "collector_trust_policy" { type = string }
variable "egress_subnet_id" { type = string }
variable "egress_security_group_ids" { type = list(string) }

module "tables" {
  source      = "../../modules/s3tables"
  bucket_name = "cryptoflow-tables-prod"
}

module "ledger" {
  source     = "../../modules/ledger"
  table_name = "cryptoflow-commit-ledger"
}

module "writer" {
  source             = "../../modules/writer_iam"
  role_name          = "cryptoflow-writer"
  table_bucket_arn   = module.tables.table_bucket_arn
  ledger_table_arn   = module.ledger.table_arn
  assume_role_policy = var.collector_trust_policy
}

module "egress" {
  source             = "../../modules/egress_ips"
  subnet_id          = var.egress_subnet_id
  security_group_ids = var.egress_security_group_ids
  ip_count           = 4
}

output "catalog_rest_uri" { value = "https://s3tables.${var.region}.amazonaws.com/iceberg" }
output "catalog_warehouse" { value = module.tables.table_bucket_arn }
output "egress_pool" { value = module.egress.egress_pool }
