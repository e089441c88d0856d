"""The DynamoDB commit ledger against a real moto server process: pending -> committed around each
commit, pending entries left by a crash reconciled against the table, and a second live writer with
the same writer id fenced off."""

from __future__ import annotations

from collections import Counter

import pytest

from connectors.iceberg.ledger import DynamoLedger, LedgerFenceError
from connectors.iceberg.sink import BackgroundCommitError
from cryptoflow.config import LedgerConfig
from tests.support.moto_server import moto_server
from tests.support.sinks import WRITER, commit_epoch, ids, part, trade

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def ledger_cfg(endpoint, monkeypatch, request):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return LedgerConfig(enabled=True, table=f"commits-{request.node.name[:40]}", endpoint_url=endpoint)


def states(ledger: DynamoLedger) -> dict[int, str]:
    return {int(e["seq"]): e["state"] for e in ledger.entries("ticks", WRITER)}


def test_every_commit_goes_pending_then_committed(catalog, ledger_cfg):
    ledger = DynamoLedger.from_config(ledger_cfg)
    p = part(catalog, ledger=ledger)
    p.write_batch([trade(0, 1), trade(0, 2)])
    commit_epoch(p)
    p.write_batch([trade(0, 3)])
    commit_epoch(p)
    assert states(ledger) == {1: "committed", 2: "committed"}
    entry = next(e for e in ledger.entries("ticks", WRITER) if e["seq"] == "2")
    assert entry["watermark"] == '{"0": 3}' and entry["rows"] == "1"


def test_pending_entries_are_reconciled_against_the_table(catalog, ledger_cfg):
    ledger = DynamoLedger.from_config(ledger_cfg)
    p = part(catalog, ledger=ledger)
    p.write_batch([trade(0, 1)])
    commit_epoch(p)
    # crash after the Iceberg commit, before the ledger heard about it
    p.ledger = None
    ledger.begin("ticks", WRITER, 2, {0: 2}, 1)
    p.write_batch([trade(0, 2)])
    commit_epoch(p)
    # crash after claiming seq 3, before the Iceberg commit
    ledger.begin("ticks", WRITER, 3, {0: 3}, 1)
    assert states(ledger) == {1: "committed", 2: "pending", 3: "pending"}
    restarted = DynamoLedger.from_config(ledger_cfg)
    restarted.owner = "next-process"
    resumed = part(catalog, ledger=restarted)
    assert states(ledger) == {1: "committed", 2: "committed", 3: "aborted"}
    assert resumed.state.seq == 2


def test_a_staged_epoch_whose_claim_was_aborted_is_committed_on_resume(catalog, ledger_cfg):
    """Claimed seq 2 (pending), crashed before the Iceberg commit, with seq 2 staged in the saved
    state: the restart settles the claim as aborted, then commits the staged files under seq 2."""
    ledger = DynamoLedger.from_config(ledger_cfg)
    p = part(catalog, ledger=ledger)
    p.write_batch([trade(0, 1)])
    commit_epoch(p)
    p._commit_in_background = lambda staged: ledger.begin("ticks", WRITER, staged.seq, staged.watermark, 1)
    p.write_batch([trade(0, 2), trade(0, 3)])
    state = p.snapshot()
    p.drain()
    assert states(ledger) == {1: "committed", 2: "pending"} and [s.seq for s in state.staged] == [2]
    restarted = DynamoLedger.from_config(ledger_cfg)
    restarted.owner = "next-process"
    resumed = part(catalog, resume=state, ledger=restarted)
    assert states(ledger) == {1: "committed", 2: "committed"}
    assert resumed.state.seq == 2 and ids(catalog) == Counter({"1": 1, "2": 1, "3": 1})
    # the next epoch claims seq 3 normally
    resumed.write_batch([trade(0, 4)])
    commit_epoch(resumed)
    assert states(ledger) == {1: "committed", 2: "committed", 3: "committed"}


def test_a_second_live_writer_with_the_same_id_is_fenced(catalog, ledger_cfg):
    mine = DynamoLedger.from_config(ledger_cfg)
    zombie = DynamoLedger.from_config(ledger_cfg)
    zombie.owner = "zombie-process"
    a = part(catalog, ledger=mine)
    b = part(catalog, ledger=zombie)
    mine.begin("ticks", WRITER, 1, {0: 1}, 1)  # a is about to commit seq 1
    b.write_batch([trade(0, 1)])
    with pytest.raises(BackgroundCommitError) as fenced:  # the commit runs after snapshot() returns
        commit_epoch(b)
    assert isinstance(fenced.value.__cause__, LedgerFenceError)
    with pytest.raises(BackgroundCommitError):  # and the fenced writer stays stopped
        b.write_batch([trade(0, 2)])
    a.write_batch([trade(0, 1)])
    commit_epoch(a)
    assert ids(catalog)[str(1)] == 1 and sum(ids(catalog).values()) == 1
