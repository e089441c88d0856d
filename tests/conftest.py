import threading

import pytest

from connectors import doorbell
from cryptoflow.simulator.binance_spot import BinanceSpotVenue
from cryptoflow.simulator.server import ExchangeSimulator
from tests.support.sinks import make_ticks_catalog


@pytest.fixture(autouse=True)
def _fresh_bells(monkeypatch):
    """Each test's threads get new worker bells (connectors/doorbell.py): the pytest thread's would carry
    channels, an emitter or idle tasks of earlier tests, and a sink would convert in its idle moments."""
    monkeypatch.setattr(doorbell, "_local", threading.local())


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


@pytest.fixture
def catalog(tmp_path):
    """A fresh SqlCatalog with an empty `cryptoflow.ticks` table."""
    return make_ticks_catalog(tmp_path)


@pytest.fixture(scope="session")
def binance_capture(tmp_path_factory, binance_spot_venue):
    """The simulator's Binance spot replay captured once into journal segments (`cryptoflow capture`)."""
    from cryptoflow.demo import demo_environment
    from tests.support.crash import capture

    root = tmp_path_factory.mktemp("capture")
    with ExchangeSimulator(binance_spot_venue, speed=0.0) as sim:
        capture(demo_environment(sim, root / "unused-warehouse"), root / "journal")
    return root / "journal"
