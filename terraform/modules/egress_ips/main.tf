# Egress per shard: one ENI with N secondary private IPs, each with its own Elastic IP, so a shard
# bound to private IP k (sharding.egress_pool) reaches the exchanges from public IP k.
variable "subnet_id" { type = string }
variable "security_group_ids" { type = list(string) }
variable "ip_count" {
  type    = number
  default = 4
}

resource "aws_network_interface" "egress" {
  subnet_id         = var.subnet_id
  security_groups   = var.security_group_ids
  private_ips_count = var.ip_count - 1 # plus the primary address
  description       = "cryptoflow shard egress"
}

resource "aws_eip" "egress" {
  count  = var.ip_count
  domain = "vpc"
}

resource "aws_eip_association" "egress" {
  count                = var.ip_count
  allocation_id        = aws_eip.egress[count.index].id
  network_interface_id = aws_network_interface.egress.id
  private_ip_address   = aws_network_interface.egress.private_ip_list[count.index]
}

output "egress_pool" { value = aws_network_interface.egress.private_ip_list }
output "public_ips" { value = aws_eip.egress[*].public_ip }
