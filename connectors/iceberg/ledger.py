"""Optional DynamoDB commit ledger: a fence against a second live writer with the same writer id, and
an audit log of every commit (design.md), never the source of truth.

Each commit is an item `(writer_id = "<table>|<writer-id>", seq)` (the key schema of
terraform/modules/ledger) that goes `pending` before the Iceberg commit and `committed` after it. The `pending` put is conditional: it fails if another process already
claimed that `(writer, seq)`, so a zombie writer stops instead of committing the same batch twice. On
start, every `pending` item is reconciled against the table's snapshot ancestry (the truth): found
means `committed`, absent means `aborted` (its rows are replayed and committed under a later seq).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

from connectors.signals import RUN_ID
from cryptoflow import metrics
from cryptoflow.config import LedgerConfig

log = logging.getLogger(__name__)

PENDING, COMMITTED, ABORTED = "pending", "committed", "aborted"


class LedgerFenceError(RuntimeError):
    """Another process holds this writer id: stop rather than risk a double commit."""


class DynamoLedger:
    def __init__(self, client: Any, table_name: str, owner: str = RUN_ID) -> None:
        self.client, self.table_name, self.owner = client, table_name, owner

    @classmethod
    def from_config(cls, cfg: LedgerConfig, create: bool = True) -> DynamoLedger:
        client = boto3.client("dynamodb", region_name=cfg.region, endpoint_url=cfg.endpoint_url)
        ledger = cls(client, cfg.table)
        if create:
            ledger.ensure_table()
        return ledger

    def ensure_table(self) -> None:
        try:
            self.client.create_table(
                TableName=self.table_name,
                KeySchema=[
                    {"AttributeName": "writer_id", "KeyType": "HASH"},
                    {"AttributeName": "seq", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "writer_id", "AttributeType": "S"},
                    {"AttributeName": "seq", "AttributeType": "N"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            self.client.get_waiter("table_exists").wait(TableName=self.table_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise

    @staticmethod
    def _pk(table: str, writer_id: str) -> str:
        return f"{table}|{writer_id}"

    def begin(self, table: str, writer_id: str, seq: int, watermark: dict[int, int], rows: int) -> None:
        """Claim `(writer, seq)` as pending; our own earlier claim (a retry) is fine, and so is a claim
        `reconcile` settled as aborted (it never landed: a restart commits that seq again, with the
        replayed rows or the staged files of its recovery state)."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    "writer_id": {"S": self._pk(table, writer_id)},
                    "seq": {"N": str(seq)},
                    "state": {"S": PENDING},
                    "owner": {"S": self.owner},
                    "watermark": {"S": json.dumps({str(k): v for k, v in sorted(watermark.items())})},
                    "rows": {"N": str(rows)},
                    "started_at": {"N": str(time.time())},
                },
                ConditionExpression=(
                    "attribute_not_exists(writer_id) OR (#o = :me AND #s = :pending) OR #s = :aborted"
                ),
                ExpressionAttributeNames={"#o": "owner", "#s": "state"},
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":pending": {"S": PENDING},
                    ":aborted": {"S": ABORTED},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                metrics.LEDGER_EVENTS.labels(table, "fenced").inc()
                raise LedgerFenceError(
                    f"{writer_id} seq {seq} is already claimed by another process; refusing to commit"
                ) from exc
            raise
        metrics.LEDGER_EVENTS.labels(table, PENDING).inc()

    def _set_state(self, table: str, writer_id: str, seq: int, state: str) -> None:
        self.client.update_item(
            TableName=self.table_name,
            Key={"writer_id": {"S": self._pk(table, writer_id)}, "seq": {"N": str(seq)}},
            UpdateExpression="SET #s = :s, finished_at = :t",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": {"S": state}, ":t": {"N": str(time.time())}},
        )
        metrics.LEDGER_EVENTS.labels(table, state).inc()

    def committed(self, table: str, writer_id: str, seq: int) -> None:
        self._set_state(table, writer_id, seq, COMMITTED)

    def entries(self, table: str, writer_id: str) -> list[dict[str, Any]]:
        items, kwargs = [], {}
        while True:
            page = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="writer_id = :pk",
                ExpressionAttributeValues={":pk": {"S": self._pk(table, writer_id)}},
                **kwargs,
            )
            for item in page["Items"]:
                items.append({k: next(iter(v.values())) for k, v in item.items()})
            if "LastEvaluatedKey" not in page:
                return items
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    def reconcile(self, table: str, writer_id: str, table_state: Any, landed: Callable[[int], bool]) -> None:
        """Settle `pending` entries left by a crash against the table's ancestry."""
        for item in self.entries(table, writer_id):
            if item["state"] != PENDING:
                continue
            seq = int(item["seq"])
            state = COMMITTED if landed(seq) else ABORTED
            log.info("ledger %s seq %d was pending: %s in the table", writer_id, seq, state)
            self._set_state(table, writer_id, seq, state)
