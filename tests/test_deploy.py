"""The deployment files (deploy/, Dockerfile.gpu) agree with the server: every ``GPTOSS_*`` variable they set is a
real setting (or one the server reads itself), ports and probe paths are the server's, the grace period outlasts the
drain, and the image runs as an unprivileged user with usage statistics off."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from server.app import create_app
from server.settings import CONFIG_DIR, Settings, load_settings, resolve_config_file
from server.supervisor import GRACE_S
from tests.helpers import REPO, scripted_settings

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "docker-compose.gpu.yaml"
DOCKERFILE = REPO / "Dockerfile.gpu"
VLLM_METRICS = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:time_to_first_token_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:generation_tokens_total",
}
# GPTOSS_* variables that are not settings: the API keys (auth.api_keys_env names it) and the cache folder (read by
# server/harmony/vocab.py and server/checkpoint.py).
NOT_SETTINGS = {"GPTOSS_API_KEYS", "GPTOSS_CACHE_DIR"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _k8s() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def _pod() -> dict[str, Any]:
    return _k8s()["Deployment"]["spec"]["template"]  # type: ignore[no-any-return]


def _container() -> dict[str, Any]:
    (container,) = _pod()["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _compose_server() -> dict[str, Any]:
    return _yaml(COMPOSE)["services"]["server"]  # type: ignore[no-any-return]


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#"))
    )
    out = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def _docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, rest in _dockerfile():
        if instruction == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _env_sets() -> dict[str, dict[str, str]]:
    """The environment each deployment gives the server (secret references as placeholders)."""
    k8s = {e["name"]: e.get("value", "<secret>") for e in _container()["env"]}
    compose = {k: str(v) for k, v in _compose_server()["environment"].items()}
    return {"dockerfile": _docker_env(), "compose": compose, "kubernetes": {**_docker_env(), **k8s}}


def _setting_field(name: str) -> Any:
    """The settings field ``GPTOSS_A__B`` sets (pydantic-settings: prefix ``GPTOSS_``, ``__`` between levels)."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("GPTOSS_").lower().split("__")
    for i, part in enumerate(parts):
        assert part in model.model_fields, f"{name}: no setting {'.'.join(parts[: i + 1])}"
        field = model.model_fields[part]
        if i < len(parts) - 1:
            model = field.annotation  # type: ignore[assignment]
            assert isinstance(model, type) and issubclass(model, BaseModel), name
    return field


def _settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """What the server would load in that environment (and no other GPTOSS_* variable), with the GPU profile the
    image starts with."""
    for key in [k for k in os.environ if k.startswith("GPTOSS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("GPTOSS_") and "__" in key:
            monkeypatch.setenv(key, value)
    return load_settings(CONFIG_DIR / "gpu.yaml")


def _port(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    return _settings(env, monkeypatch).server.port


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", value)
    assert match, value
    return int(match[1]) * (60 if match[2] == "m" else 1)


# -- environment variables --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["dockerfile", "compose", "kubernetes"])
def test_every_gptoss_variable_is_a_setting_or_read_by_the_server(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env_sets()[where]
    names = [k for k in env if k.startswith("GPTOSS_")]
    assert names
    for name in names:
        if name in NOT_SETTINGS:
            continue
        assert "__" in name, f"{name} is neither a setting nor read by the server"
        _setting_field(name)
    settings = _settings(env, monkeypatch)  # the values validate, too
    assert settings.server.host == "0.0.0.0"
    assert settings.engine.vllm.model == "/models/gpt-oss-120b"


def test_the_variables_that_are_not_settings_are_read_by_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.checkpoint import default_checkpoint_dir
    from server.harmony.vocab import default_cache_dir

    assert load_settings(CONFIG_DIR / "gpu.yaml").auth.api_keys_env == "GPTOSS_API_KEYS"
    monkeypatch.setenv("GPTOSS_CACHE_DIR", str(tmp_path))
    assert default_cache_dir().parent == tmp_path and default_checkpoint_dir(0).parent == tmp_path


def test_api_keys_come_from_a_secret_never_from_the_files() -> None:
    (keys,) = [e for e in _container()["env"] if e["name"] == "GPTOSS_API_KEYS"]
    assert "value" not in keys and keys["valueFrom"]["secretKeyRef"]["name"]
    assert str(_compose_server()["environment"]["GPTOSS_API_KEYS"]).startswith("${GPTOSS_API_KEYS")
    assert "GPTOSS_API_KEYS" not in _docker_env()


# -- ports, probes, metrics -------------------------------------------------------------------------------------------


def test_ports_agree_with_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    envs = _env_sets()
    port = _port(envs["kubernetes"], monkeypatch)
    assert port == Settings().server.port == 8000
    assert _port(envs["compose"], monkeypatch) == _port(envs["dockerfile"], monkeypatch) == port
    # Kubernetes: the container port, the Service, the ServiceMonitor and the scrape annotation
    (http,) = _container()["ports"]
    assert (http["name"], http["containerPort"]) == ("http", port)
    service = _k8s()["Service"]["spec"]
    (service_port,) = service["ports"]
    assert service_port["targetPort"] == "http"
    assert _pod()["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    (endpoint,) = _k8s()["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]
    # compose: the published port, the health check, Prometheus's target
    server = _compose_server()
    assert [p.rsplit(":", 1)[1] for p in server["ports"]] == [str(port)]
    assert f"127.0.0.1:{port}/health" in " ".join(server["healthcheck"]["test"])
    (job,) = _yaml(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"server:{port}"]
    # the image
    assert ("EXPOSE", str(port)) in _dockerfile()
    assert f"127.0.0.1:{port}/health" in dict(_dockerfile())["HEALTHCHECK"]


def test_labels_select_the_pods() -> None:
    docs = _k8s()
    labels = _pod()["metadata"]["labels"]
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert (
        docs["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items()
        <= docs["Service"]["metadata"]["labels"].items()
    )


def test_probe_paths_are_the_servers(tmp_path: Path) -> None:
    app = create_app(scripted_settings(tmp_path))
    paths = {route.path for route in app.routes}  # type: ignore[attr-defined]
    app.state.ctx.service.close()
    container = _container()
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {k: p["path"] for k, p in probes.items()} == {
        "startupProbe": "/health",
        "readinessProbe": "/health",
        "livenessProbe": "/live",
    }
    assert {"/health", "/live"} <= paths
    assert all(p["port"] == "http" for p in probes.values())
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 20 * 60  # loading 65 GB of weights


def test_metrics_are_scraped_from_slash_metrics() -> None:
    assert _pod()["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert _pod()["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert _k8s()["ServiceMonitor"]["spec"]["endpoints"][0]["path"] == "/metrics"
    (job,) = _yaml(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
    assert job["metrics_path"] == "/metrics"


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboards() -> None:
    grafana = _yaml(COMPOSE)["services"]["grafana"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"] if m.startswith("./")}
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    (source,) = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = _yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "gptoss.yaml")["providers"]
    assert provider["folder"] and mounts[provider["options"]["path"]] == "./grafana/dashboards"
    dashboards = list((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    used: set[str] = set()
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"]
            for target in panel["targets"]:
                used |= set(re.findall(r"vllm:[a-z0-9_]+", target["expr"]))
    assert {m.removesuffix("_bucket") for m in used} == VLLM_METRICS


# -- GPU, volumes, shutdown -------------------------------------------------------------------------------------------


def test_one_gpu_shared_memory_and_a_read_only_model_volume() -> None:
    container, pod = _container(), _pod()["spec"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"]["medium"] == "Memory"
    models = mounts["/models"]
    assert models["readOnly"] is True and volumes[models["name"]]["persistentVolumeClaim"]["readOnly"] is True
    assert (
        volumes[models["name"]]["persistentVolumeClaim"]["claimName"]
        == _k8s()["PersistentVolumeClaim"]["metadata"]["name"]
    )
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GPTOSS_ENGINE__VLLM__MODEL"].startswith(models["mountPath"] + "/")
    server = _compose_server()
    (device,) = server["deploy"]["resources"]["reservations"]["devices"]
    assert device["count"] == 1 and "gpu" in device["capabilities"]
    assert server["volumes"][0].endswith(":/models/gpt-oss-120b:ro") and server["shm_size"]


def test_grace_period_outlasts_the_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    envs = _env_sets()
    k8s_drain = _settings(envs["kubernetes"], monkeypatch).server.drain_timeout_s
    grace = _pod()["spec"]["terminationGracePeriodSeconds"]
    assert grace >= k8s_drain + 15 and grace > k8s_drain + GRACE_S
    compose_drain = _settings(envs["compose"], monkeypatch).server.drain_timeout_s
    assert _seconds(_compose_server()["stop_grace_period"]) >= compose_drain + 15


def test_the_configured_profile_exists() -> None:
    entry = json.loads(dict(_dockerfile())["CMD"])
    for args in (entry, _container()["args"]):
        assert args[0] == "--config" and resolve_config_file(Path(args[1])).is_file()


# -- the image --------------------------------------------------------------------------------------------------------


def test_image_runs_as_an_unprivileged_user_with_tini_and_no_usage_stats() -> None:
    steps = _dockerfile()
    users = [rest for instruction, rest in steps if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    run = " ".join(rest for instruction, rest in steps if instruction == "RUN")
    uid = re.search(r"ARG UID=(\d+)", "\n".join(f"{i} {r}" for i, r in steps))
    assert uid and 'useradd --system --uid "$UID"' in run and f" {users[-1]}" in run
    security = _pod()["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == int(uid[1])
    env = _docker_env()
    assert env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1" and env["HF_HUB_OFFLINE"] == "1"
    cache = env["GPTOSS_CACHE_DIR"]
    assert re.search(rf"install -d -o {users[-1]} -g \S+ {re.escape(cache)}", run), "the cache folder is not writable"
    entrypoint = json.loads(dict(steps)["ENTRYPOINT"])
    assert entrypoint[:2] == ["tini", "--"] and entrypoint[2:] == ["gptoss-server", "serve"]
    assert "tini" in run.split("apt-get install", 1)[1].split("&&", 1)[0]
