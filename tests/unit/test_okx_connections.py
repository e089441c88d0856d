"""OKX subscriptions are split over as many connections as the per-connection limits require, and a
connection whose subscriptions would still exceed them never takes its client thread down."""

from __future__ import annotations

import itertools
import math
import queue

import pytest

from connectors.okx.client import OkxClient, okx_topics, plan_connections, predicted_market
from connectors.okx.source import STREAMS, okx_clients
from cryptoflow import metrics
from cryptoflow.config import ConnectorConfig, OkxConfig, load_settings
from cryptoflow.model import Market

SWAPS = [f"C{i:03d}-USDT-SWAP" for i in range(300)]
SPOTS = [f"C{i:03d}-USDT" for i in range(120)]
FUTURES = [f"C{i:03d}-USD-260925" for i in range(40)]


def _topic_count(ids: list[str], stream: str, cfg: OkxConfig) -> tuple[int, int]:
    """Subscriptions and books `ids` need on one connection, counted here from the protocol's rules
    (one book/trades per instrument, funding per SWAP, liquidation-orders per derivative type)."""
    markets, _ = STREAMS[stream]
    kinds = {i: ("SWAP" if i.endswith("-SWAP") else "FUTURES" if i[-6:].isdigit() else "SPOT") for i in ids}
    market = {"SWAP": Market.PERP, "FUTURES": Market.FUTURE, "SPOT": Market.SPOT}
    wanted = [i for i in ids if market[kinds[i]] in markets]
    if stream in ("spot_delta", "futures_delta"):
        return len(wanted), len(wanted)
    if stream == "ticks":
        return len(wanted), 0
    if stream == "funding":
        return sum(1 for i in wanted if kinds[i] == "SWAP"), 0
    return len({kinds[i] for i in wanted}), 0  # liquidations


@pytest.mark.parametrize("stream", ["spot_delta", "futures_delta", "ticks", "funding", "liquidations"])
@pytest.mark.parametrize("max_args,max_books", [(240, 25), (7, 3), (4, 1)])
def test_plan_keeps_every_connection_within_the_limits_and_every_instrument(stream, max_args, max_books):
    cfg = OkxConfig(max_args_per_connection=max_args, max_books_per_connection=max_books)
    markets, channels = STREAMS[stream]
    ids = SWAPS + SPOTS + FUTURES
    groups = plan_connections(ids, channels, markets, cfg)
    assert [i for g in groups for i in g] == ids  # every instrument once, in order
    for group in groups:
        args, books = _topic_count(group, stream, cfg)
        assert args <= max_args and books <= max_books
        assert len(okx_topics(group, channels, markets, cfg.book_channel, predicted_market)) == args
    # and no more connections than needed: a group plus the next group's first instrument is over a limit
    for group, following in itertools.pairwise(groups):
        args, books = _topic_count([*group, following[0]], stream, cfg)
        assert args > max_args or books > max_books


def test_ticks_for_300_swaps_take_two_connections_not_five():
    cfg = OkxConfig()  # 240 args per connection; ticks needs one per instrument
    markets, channels = STREAMS["ticks"]
    groups = plan_connections(SWAPS, channels, markets, cfg)
    assert [len(g) for g in groups] == [240, 60]


def test_client_with_more_subscriptions_than_one_connection_takes_is_refused_when_built():
    cfg = OkxConfig(max_args_per_connection=240)
    markets, channels = STREAMS["ticks"]
    with pytest.raises(ValueError, match=r"okx shard 3: 300 instruments need 300 subscriptions.*240"):
        OkxClient(cfg, ConnectorConfig(), SWAPS, channels, 3, queue.Queue(), markets=markets)


def test_rest_list_that_adds_subscriptions_is_clamped_logged_and_counted_not_raised(caplog):
    """The plan sizes by the id; if the REST list calls spot-looking ids SWAPs (funding on each), the
    connection subscribes what fits instead of ending the client's thread."""
    cfg = OkxConfig(max_args_per_connection=4)
    ids = ["AAA-USDT", "BBB-USDT", "CCC-USDT"]  # trades only (3 args) as the ids predict
    client = OkxClient(cfg, ConnectorConfig(), ids, {"trades", "funding"}, 0, queue.Queue())
    client.inst_map.update({i: (Market.PERP, i) for i in ids})  # what the REST list said
    left_out = metrics.SUBSCRIPTIONS_LEFT_OUT.labels("okx")
    bad_frames = [m for m in metrics.BAD_FRAMES.collect()[0].samples if m.labels.get("exchange") == "okx"]
    before = left_out._value.get()
    topics = client.topics()
    assert topics == [("trades", "AAA-USDT"), ("funding-rate", "AAA-USDT"), ("trades", "BBB-USDT"),
                      ("funding-rate", "BBB-USDT")]  # fmt: skip
    assert left_out._value.get() == before + 2  # 6 subscriptions, 4 fit: CCC-USDT's two are left out
    assert "exceed okx.max_args_per_connection (4)" in caplog.text
    assert len(client.subscribe_messages()) == 1  # and the subscribe goes out
    assert left_out._value.get() == before + 2  # counted once per client, not per subscribe
    # nothing was received, so nothing is a bad frame
    assert [
        m for m in metrics.BAD_FRAMES.collect()[0].samples if m.labels.get("exchange") == "okx"
    ] == bad_frames


def test_source_plans_enough_clients_for_a_large_shard():
    settings = load_settings(
        environ={
            "CRYPTOFLOW_EXCHANGES__OKX__ENABLED": "true",
            "CRYPTOFLOW_EXCHANGES__OKX__SYMBOLS": "[" + ", ".join(SWAPS) + "]",
            "CRYPTOFLOW_SHARDING__TOTAL_SHARDS": "1",
        }
    )
    markets, channels = STREAMS["futures_delta"]
    planned = okx_clients(settings, markets, channels)
    assert planned is not None
    shards, make_clients = planned
    clients = make_clients(shards[0], queue.Queue(), None)
    assert sorted(i for c in clients for i in c.inst_ids) == sorted(SWAPS)
    assert len(clients) == math.ceil(300 / settings.exchanges.okx.max_books_per_connection)
    assert all(len(c.inst_ids) <= settings.exchanges.okx.max_books_per_connection for c in clients)
