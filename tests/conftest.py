import pytest

from cryptoflow.simulator.binance_spot import BinanceSpotVenue
from cryptoflow.simulator.server import ExchangeSimulator


@pytest.fixture(scope="session")
def binance_spot_venue() -> BinanceSpotVenue:
    return BinanceSpotVenue.from_cryptofeed_v1()


@pytest.fixture
def binance_spot_simulator(binance_spot_venue):
    with ExchangeSimulator(binance_spot_venue, speed=0.0) as sim:
        yield sim


@pytest.fixture(scope="session")
def binance_usdm_venue():
    from cryptoflow.simulator.binance_usdm import BinanceUsdmVenue

    return BinanceUsdmVenue.from_cryptofeed_v1()


@pytest.fixture
def binance_usdm_simulator(binance_usdm_venue):
    with ExchangeSimulator(binance_usdm_venue, speed=0.0) as sim:
        yield sim
