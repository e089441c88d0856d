"""A paced synthetic feed for simulator venues: one generator shared by every connection of a venue
(as on an exchange), broadcasting each market event to the subscribers that want it.

A venue registers `Subscriber`s (one per connection); each turns an event into zero or more frames for
its connection with the venue's encoder, and usually buffers them: the feed awaits every `flushers`
entry at each of its yield points (every 64 changes at full speed, before every pause when paced), so
frames go out in batches (`simulator.batching.send_many`: one socket write per batch). The feed makes `messages` book changes at
`rate` per second (0 = as fast as possible, yielding to the loop every 64), and every `trade_every` /
`liquidation_every` / `funding_every` changes a trade / liquidation / funding update for the changed
symbol (or, with `liquidation_symbols` / `funding_symbols`, for those symbols in turn: only derivatives
have them). Kraken v2 (`kraken.py`), Bybit and OKX (`synthetic_venues.py`) plug their encoders in this way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptoflow.simulator.synthetic.market import BookChange, Funding, Liquidation, SyntheticMarket, Trade

Event = BookChange | Trade | Liquidation | Funding
Subscriber = Callable[[Event], Awaitable[None]]


@dataclass
class FeedPlan:
    messages: int = 2000
    rate: float = 0.0
    trade_every: int = 10
    liquidation_every: int = 0
    funding_every: int = 0
    start_after_s: float = 0.3  # let the first clients subscribe
    # the symbols that have liquidations / funding (derivatives only, e.g. on OKX), taken in turn;
    # None = the symbol of the change that triggered it
    liquidation_symbols: tuple[str, ...] | None = None
    funding_symbols: tuple[str, ...] | None = None
    # start as soon as this says every expected client subscribed (`start_after_s` is then the limit)
    start_when: Callable[[], bool] | None = None


class SyntheticFeed:
    def __init__(self, market: SyntheticMarket, plan: FeedPlan) -> None:
        self.market, self.plan = market, plan
        self.subscribers: list[Subscriber] = []
        self.flushers: list[Callable[[], Awaitable[None]]] = []
        self.changes_sent = 0
        self.task: asyncio.Task | None = None
        # speed factor per paced change (the simulator's burst faults set it); None = always `rate`
        self.tempo: Callable[[], float] | None = None

    def start(self, on_end: Callable[[], Awaitable[None]]) -> None:
        """Start once (on the first connection); `on_end` runs when the plan is exhausted."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(on_end))

    async def _broadcast(self, event: Event) -> None:
        for subscriber in list(self.subscribers):
            await subscriber(event)

    async def _flush(self) -> None:
        for flush in list(self.flushers):
            await flush()

    async def _run(self, on_end: Callable[[], Awaitable[None]]) -> None:
        plan, market = self.plan, self.market
        loop = asyncio.get_running_loop()
        try:  # `on_end` runs whatever happens: clients wait for the end-of-replay close
            if plan.start_when is None:
                await asyncio.sleep(plan.start_after_s)
            else:
                give_up = loop.time() + plan.start_after_s
                while not plan.start_when() and loop.time() < give_up:
                    await asyncio.sleep(0.02)
            start = due = loop.time()
            for i in range(plan.messages):
                if plan.rate > 0:
                    if self.tempo is None:
                        due = start + i / plan.rate
                    elif i:
                        due += 1 / (plan.rate * self.tempo())
                    delay = due - loop.time()
                    if delay > 0:
                        await self._flush()
                        await asyncio.sleep(delay)
                elif i % 64 == 0:
                    await self._flush()
                    await asyncio.sleep(0)
                change = market.next_change()
                await self._broadcast(change)
                if plan.trade_every and i % plan.trade_every == 0:
                    await self._broadcast(market.next_trade(change.symbol))
                if plan.liquidation_every and i % plan.liquidation_every == 0:
                    symbol = _pick(plan.liquidation_symbols, i // plan.liquidation_every, change.symbol)
                    if symbol is not None:
                        await self._broadcast(market.next_liquidation(symbol))
                if plan.funding_every and i % plan.funding_every == 0:
                    symbol = _pick(plan.funding_symbols, i // plan.funding_every, change.symbol)
                    if symbol is not None:
                        await self._broadcast(market.next_funding(symbol))
                self.changes_sent = i + 1
            await self._flush()
            await asyncio.sleep(0.2)  # let in-flight resubscribes get their snapshot
        finally:
            await on_end()


def _pick(symbols: tuple[str, ...] | None, n: int, changed: str) -> str | None:
    """The n-th event's symbol: `changed` without a list, else the list in turn (None if it is empty)."""
    if symbols is None:
        return changed
    return symbols[n % len(symbols)] if symbols else None
