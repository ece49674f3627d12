"""Hypothesis strategies for the pipeline's tests: event streams with the cases the engine must absorb."""

from __future__ import annotations

from hypothesis import strategies as st

from pipeline.testkit import T0, Item, quote, trade, transfer

EXCHANGE_WALLET = "0x3f5ce5fbfe3e9af3971dd833d26ba9b5c936f0be"
"""A wallet config/wallets.yaml labels as an exchange's (Binance)."""


@st.composite
def event_streams(draw: st.DrawFn, max_size: int = 60) -> list[Item]:
    """Streams with whales, duplicates, id gaps, late and out-of-order events, bad records, 2 keys."""
    n = draw(st.integers(min_value=1, max_value=max_size))
    items: list[Item] = []
    ts = T0
    next_id = {"BTCUSDT": 1, "ETHUSDT": 1}
    for _ in range(n):
        symbol = draw(st.sampled_from(["BTCUSDT", "ETHUSDT"]))
        ts += draw(st.sampled_from([0, 1, 1_000_000, 20_000_000, 45_000_000]))
        jitter = draw(st.sampled_from([0, 0, 0, -5_000_000, -30_000_000]))
        choice = draw(st.integers(min_value=0, max_value=9))
        if choice <= 5:
            step = draw(st.sampled_from([1, 1, 1, 0, 3, -2]))
            tid = max(1, next_id[symbol] + step)
            next_id[symbol] = max(next_id[symbol], tid + 1)
            price = draw(st.sampled_from([100.0, 101.0, 150.0]))
            qty = draw(st.sampled_from([1.0, 5_000.0, 10_000.0, 20_000.0]))
            items.append(trade(tid, price, qty, ts + jitter, symbol=symbol))
        elif choice <= 8:
            bid = draw(st.sampled_from([99.0, 100.0, 101.0]))
            items.append(quote(draw(st.integers(1, 10**6)), bid, 100.0, ts + jitter, symbol=symbol))
        else:
            items.append(draw(st.sampled_from([b"{", b'{"v":1,"type":"trade"}', b'{"v":1,"type":"x"}'])))
    return items


@st.composite
def flow_streams(draw: st.DrawFn, max_per_key: int = 40) -> list[Item]:
    """Two keys' trades of both sides and quotes, sub-second to minute gaps, small backwards jitter,
    duplicates and late events, with the keys interleaved in a drawn order (each key's own order kept),
    as two shards or one would deliver them."""
    per_key: list[list[Item]] = []
    for symbol in ("BTCUSDT", "ETHUSDT"):
        items: list[Item] = []
        ts, tid = T0, 1
        for _ in range(draw(st.integers(min_value=int(symbol == "BTCUSDT"), max_value=max_per_key))):
            ts += draw(st.sampled_from([0, 200_000, 900_000, 1_000_000, 1_000_001, 3_000_000, 40_000_000]))
            jitter = draw(st.sampled_from([0, 0, 0, -300_000, -30_000_000]))
            if draw(st.integers(0, 4)) == 0:
                items.append(quote(draw(st.integers(1, 10**6)), 99.0, 100.0, ts + jitter, symbol=symbol))
                continue
            tid += draw(st.sampled_from([1, 1, 1, 0]))
            qty = draw(st.sampled_from([1.0, 4.0, 6.0, 12.0]))
            side = draw(st.sampled_from(["buy", "buy", "sell"]))
            items.append(trade(tid, 100.0, qty, ts + jitter, symbol=symbol, side=side))
        per_key.append(items)
    return interleave(draw, per_key)


@st.composite
def price_streams(draw: st.DrawFn, max_per_key: int = 50) -> list[Item]:
    """Two keys whose prices move by up to 80 bps a step: small fills, whale-sized trades and same-side
    runs, quotes, duplicates, events a little out of time order and late ones, sub-second to 21-second
    gaps; the keys interleaved in a drawn order (each key's own order kept)."""
    per_key: list[list[Item]] = []
    for symbol in ("BTCUSDT", "ETHUSDT"):
        items: list[Item] = []
        ts, tid, price = T0, 1, 100.0
        for _ in range(draw(st.integers(min_value=int(symbol == "BTCUSDT"), max_value=max_per_key))):
            ts += draw(st.sampled_from([0, 500_000, 1_000_000, 2_000_000, 5_000_000, 21_000_000]))
            jitter = draw(st.sampled_from([0, 0, 0, 0, -400_000, -4_000_000, -15_000_000]))
            if draw(st.integers(0, 5)) == 0:
                items.append(quote(draw(st.integers(1, 10**6)), 99.0, 100.0, ts + jitter, symbol=symbol))
                continue
            tid += draw(st.sampled_from([1, 1, 1, 1, 0]))
            step = draw(st.sampled_from([-0.008, -0.003, 0.0, 0.0, 0.002, 0.004, 0.008]))
            price = round(price * (1 + step), 4)
            qty = draw(st.sampled_from([1.0, 3.0, 6.0, 20.0]))
            side = draw(st.sampled_from(["buy", "buy", "sell"]))
            items.append(trade(tid, price, qty, ts + jitter, symbol=symbol, side=side))
        per_key.append(items)
    return interleave(draw, per_key)


def interleave(draw: st.DrawFn, per_key: list[list[Item]]) -> list[Item]:
    """The keys' events interleaved in a drawn order, each key's own order kept (as shards deliver them)."""
    order = draw(st.permutations([k for k, items in enumerate(per_key) for _ in items]))
    cursors = [0] * len(per_key)
    merged: list[Item] = []
    for k in order:
        merged.append(per_key[k][cursors[k]])
        cursors[k] += 1
    return merged


@st.composite
def onchain_streams(
    draw: st.DrawFn, max_market: int = 30, max_transfers: int = 12
) -> tuple[list[Item], list[Item]]:
    """The two streams MOD-010 joins, each in its own arrival order: BTC and ETH reference-instrument
    trades and quotes (with backwards jitter, duplicates and late ones), and transfers of BTC, ETH, a
    stablecoin and an asset without a reference instrument, around the same times, some repeated,
    some to or from an exchange wallet, some after the market's last event (held to the end)."""
    market: list[Item] = []
    ts = T0
    for i in range(draw(st.integers(min_value=0, max_value=max_market))):
        symbol = draw(st.sampled_from(["BTCUSDT", "ETHUSDT"]))
        ts += draw(st.sampled_from([0, 1, 500_000, 2_000_000, 15_000_000]))
        jitter = draw(st.sampled_from([0, 0, -1_000_000, -20_000_000]))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            market.append(quote(i, 99.0, 100.0, ts + jitter, symbol=symbol))
        else:
            tid = draw(st.sampled_from([i, i, max(i - 1, 0)]))  # a repeated id is a duplicate
            price = draw(st.sampled_from([100.0, 120.0, 90.0]))
            market.append(trade(tid, price, 1.0, ts + jitter, symbol=symbol))
    transfers: list[Item] = []
    for tx in range(draw(st.integers(min_value=0, max_value=max_transfers))):
        if transfers and draw(st.integers(min_value=0, max_value=5)) == 0:
            transfers.append(draw(st.sampled_from(transfers)))
            continue
        asset = draw(st.sampled_from(["BTC", "BTC", "ETH", "USDT", "XYZ"]))
        at = T0 + draw(st.integers(min_value=-5_000_000, max_value=ts - T0 + 5_000_000))
        amount = draw(st.sampled_from([1.0, 20.0, 80.0, 5_000.0]))
        plain, other = "0x" + "11" * 20, "0x" + "22" * 20
        ends = [(plain, other), (plain, EXCHANGE_WALLET), (EXCHANGE_WALLET, other)]
        sender, receiver = draw(st.sampled_from(ends))
        log_index = draw(st.integers(0, 2))
        transfers.append(transfer(tx, log_index, asset, amount, at, from_addr=sender, to_addr=receiver,
                                  ts_recv=at + 3_000_000))
    return market, transfers


@st.composite
def interleavings(draw: st.DrawFn, streams: tuple[list[Item], list[Item]]) -> list[Item]:
    """One arrival order of two streams on different shards: each stream's own order kept."""
    first, second = list(streams[0]), list(streams[1])
    out: list[Item] = []
    while first or second:
        take_first = bool(first) and (not second or draw(st.booleans()))
        out.append((first if take_first else second).pop(0))
    return out
