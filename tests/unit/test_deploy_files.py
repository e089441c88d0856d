"""The Kubernetes manifests and Terraform are never applied from here, so check what can be checked:
they parse, they agree with each other and with the code they run."""

from pathlib import Path

import hcl2
import yaml

from cryptoflow.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def load_yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_k8s_statefulset_is_consistent():
    (sts,) = load_yaml_docs(REPO / "k8s/base/statefulset.yaml")
    spec = sts["spec"]["template"]["spec"]
    init_env, main_env = env_of(spec["initContainers"][0]), env_of(spec["containers"][0])
    assert int(init_env["REPLICAS"]) == sts["spec"]["replicas"]
    assert main_env["BYTEWAX_WORKERS_PER_PROCESS"] == "1"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    resources = spec["containers"][0]["resources"]  # requested, never capped: a CFS quota stalls the reads
    assert "cpu" in resources["requests"] and "cpu" not in resources.get("limits", {})
    (svc,) = load_yaml_docs(REPO / "k8s/base/service.yaml")
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True


def test_k8s_overlays_run_existing_dataflows():
    overlays = sorted((REPO / "k8s/overlays").iterdir())
    assert overlays
    for overlay in overlays:
        (kust,) = load_yaml_docs(overlay / "kustomization.yaml")
        (op,) = yaml.safe_load(kust["patches"][0]["patch"])
        module = next(arg for arg in op["value"] if arg.startswith("dataflows.")).split(":")[0]
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), module


def test_k8s_config_is_a_valid_cryptoflow_config():
    settings = load_settings(REPO / "k8s/base/cryptoflow.yaml", environ={})
    assert settings.catalog.type == "rest" and settings.catalog.warehouse.startswith("arn:aws:s3tables:")


def unquote(text: str) -> str:
    return text.strip('"')


def test_terraform_modules_parse_and_get_their_required_variables():
    env = hcl2.loads((REPO / "terraform/envs/prod/main.tf").read_text())
    assert env["module"]
    for block in env["module"]:
        ((name, args),) = block.items()
        source = (REPO / "terraform/envs/prod" / unquote(args["source"])).resolve()
        module = hcl2.loads((source / "main.tf").read_text())
        required = {
            unquote(var)
            for entry in module["variable"]
            for var, body in entry.items()
            if "default" not in body
        }
        assert required, f"module {name} declares no required variable"
        missing = required - set(args)
        assert not missing, f"module {name} misses {missing}"


def test_prod_configs_one_per_stream_with_real_exchange_urls():
    from connectors.registry import STREAMS, sources_for

    for stream in STREAMS:
        settings = load_settings(REPO / "configs/prod" / f"{stream}.yaml", environ={})
        assert sources_for(settings, stream), f"configs/prod/{stream}.yaml enables no source for {stream}"
        binance = settings.exchanges.binance
        if binance.spot.enabled:
            assert binance.spot.ws_url == "wss://stream.binance.com:9443"
            assert binance.spot.rest_url == "https://api.binance.com"
        if binance.usdm.enabled:
            assert binance.usdm.ws_url == "wss://fstream.binance.com" and binance.usdm.url_layout == "split"
            assert binance.usdm.rest_url == "https://fapi.binance.com"
        assert settings.catalog.type == "rest" and settings.catalog.rest_uri.startswith("https://s3tables.")
