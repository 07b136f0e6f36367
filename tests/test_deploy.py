"""The deployment files (deploy/, Dockerfile.gpu) agree with the server: every ``GPTOSS_*`` variable they set is a
real setting (or one the server reads itself), ports and probe paths are the server's, the grace period outlasts the
drain, and the image runs as an unprivileged user with usage statistics off."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
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


# -- N replicas behind a router (deploy/kubernetes-replicas) ----------------------------------------------------------

REPLICAS = DEPLOY / "kubernetes-replicas"
ROUTER_PIN = re.compile(r"vllm-router==([0-9][0-9.]*)")


def _overlay() -> dict[tuple[str, str], dict[str, Any]]:
    """The overlay's own documents (not the base), by (kind, name)."""
    kustomization = _yaml(REPLICAS / "kustomization.yaml")
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for name in kustomization["resources"]:
        if name.startswith(".."):
            continue
        for doc in yaml.safe_load_all((REPLICAS / name).read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def _patches() -> dict[str, dict[str, Any]]:
    """The overlay's strategic-merge patches, by the kind they patch."""
    docs = [_yaml(REPLICAS / p["path"]) for p in _yaml(REPLICAS / "kustomization.yaml")["patches"]]
    return {doc["kind"]: doc for doc in docs}


def _patch() -> dict[str, Any]:
    return _patches()["Deployment"]


def _router() -> dict[str, Any]:
    (container,) = _overlay()[("Deployment", "gptoss-router")]["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _router_args() -> dict[str, str]:
    """``--name=value`` and ``--name value`` arguments as a dict (a bare flag maps to "")."""
    args, out = _router()["args"], {}
    i = 0
    while i < len(args):
        name, _, value = args[i].partition("=")
        if not value and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value, i = args[i + 1], i + 1
        out[name] = value
        i += 1
    return out


def test_the_overlay_builds_on_the_one_replica_files() -> None:
    kustomization = _yaml(REPLICAS / "kustomization.yaml")
    bases = [name for name in kustomization["resources"] if name.startswith("..")]
    assert [(REPLICAS / b).resolve() for b in bases] == [K8S.resolve()]
    for name in kustomization["resources"]:
        assert name in bases or (REPLICAS / name).is_file(), name
    patch, base = _patch(), _k8s()["Deployment"]
    assert (patch["kind"], patch["metadata"]["name"]) == (base["kind"], base["metadata"]["name"])
    (patched,) = patch["spec"]["template"]["spec"]["containers"]
    assert patched["name"] == _container()["name"]  # a strategic merge by container name
    assert patch["spec"]["replicas"] >= 2
    # the pods of every node mount the one weights volume
    claim = _patches()["PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == _k8s()["PersistentVolumeClaim"]["metadata"]["name"]
    assert claim["spec"]["accessModes"] in (["ReadWriteMany"], ["ReadOnlyMany"])
    # one GPU per pod: a new pod starts only once an old one has given its GPU back
    assert patch["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def test_replicas_share_the_store_on_postgresql_and_one_seal_key(monkeypatch: pytest.MonkeyPatch) -> None:
    (patched,) = _patch()["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in patched["env"]}
    assert set(env) == {"GPTOSS_STORE__URL", Settings().store.seal_key_env}
    for item in env.values():  # from a Secret, never a literal in the files
        assert "value" not in item and item["valueFrom"]["secretKeyRef"]["name"] == "gptoss-store"
    _setting_field("GPTOSS_STORE__URL")
    k8s = {**_env_sets()["kubernetes"], "GPTOSS_STORE__URL": "postgresql://gptoss@postgres:5432/gptoss"}
    assert _settings(k8s, monkeypatch).store.url == "postgresql://gptoss@postgres:5432/gptoss"
    secret_keys = {item["valueFrom"]["secretKeyRef"]["key"] for item in env.values()}
    comments = (REPLICAS / "kustomization.yaml").read_text()
    assert all(f"--from-literal={key}=" in comments for key in secret_keys)
    # the image has the PostgreSQL driver (the postgres extra)
    run = " ".join(rest for instruction, rest in _dockerfile() if instruction == "RUN")
    extras = re.search(r'pip install "\.\[([a-z,]+)\]"', run)
    assert extras and "postgres" in extras[1].split(",")
    assert "postgres" in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_the_router_finds_and_checks_the_server_pods() -> None:
    docs, args = _overlay(), _router_args()
    pod_labels = _pod()["metadata"]["labels"]
    key, _, value = args["--selector"].partition("=")
    assert pod_labels[key] == value
    assert int(args["--service-discovery-port"]) == _container()["ports"][0]["containerPort"]
    assert args["--health-check-endpoint"] == _container()["readinessProbe"]["httpGet"]["path"] == "/health"
    assert args["--policy"] == "consistent_hash"
    assert args["--cb-failure-threshold"] == "1"  # the retry of a refused request goes to another pod
    assert int(args["--request-timeout-secs"]) >= 3600
    assert "--api-key" not in args  # transparent paths would then pass for any client: they go around it
    env = {e["name"]: e for e in _router()["env"]}
    assert args["--service-discovery-namespace"] == "$(POD_NAMESPACE)"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # it may list and watch pods in its namespace, as its own service account
    deployment = docs[("Deployment", "gptoss-router")]
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert ("ServiceAccount", account) in docs
    binding = docs[("RoleBinding", account)]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
    (rule,) = docs[("Role", binding["roleRef"]["name"])]["rules"]
    assert rule["resources"] == ["pods"] and {"list", "watch"} <= set(rule["verbs"])


def test_the_router_service_probes_and_version_agree() -> None:
    docs, router, args = _overlay(), _router(), _router_args()
    deployment, service = docs[("Deployment", "gptoss-router")], docs[("Service", "gptoss-router")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in router["ports"]}
    assert ports["http"] == int(args["--port"]) and ports["metrics"] == int(args["--prometheus-port"])
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == args["--prometheus-port"]
    assert router["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": "http"}
    assert router["livenessProbe"]["httpGet"] == {"path": "/liveness", "port": "http"}
    # the image's vllm-router is the version the tests run
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (pinned,) = [m[1] for m in map(ROUTER_PIN.fullmatch, extras["test"]) if m]
    (built,) = ROUTER_PIN.findall((REPLICAS / "Dockerfile.router").read_text())
    assert built == pinned and router["image"].endswith(f":{pinned}")


def test_the_ingress_sends_the_typed_chat_paths_to_the_router_and_the_rest_to_the_pods() -> None:
    docs = _overlay()
    ingress = docs[("Ingress", "gptoss")]
    (rule,) = ingress["spec"]["rules"]
    routes = {(p["path"], p["pathType"]): p["backend"]["service"] for p in rule["http"]["paths"]}
    services = {"gptoss-router": docs[("Service", "gptoss-router")], "gptoss-server": _k8s()["Service"]}
    for target in routes.values():
        service = services[target["name"]]
        assert target["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    to_router = {path for (path, kind), target in routes.items() if target["name"] == "gptoss-router"}
    assert to_router == {"/v1/chat/completions", "/v1/completions"}
    assert all(kind == "Exact" for (path, kind) in routes if path in to_router)
    assert routes[("/", "Prefix")]["name"] == _k8s()["Service"]["metadata"]["name"]
    # the same proxy settings as deploy/nginx/gptoss.conf
    notes = ingress["metadata"]["annotations"]
    recipe = (DEPLOY / "nginx" / "gptoss.conf").read_text()
    assert f"hash {notes['nginx.ingress.kubernetes.io/upstream-hash-by']} consistent;" in recipe
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert f"proxy_next_upstream {notes['nginx.ingress.kubernetes.io/proxy-next-upstream']};" in recipe
    assert notes["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"


def test_kubectl_renders_the_overlay_with_the_patches_merged() -> None:
    """``kubectl kustomize`` (offline; skipped where kubectl is not installed) builds what ``kubectl apply -k``
    would apply: the base's server Deployment with the store's variables added to its own, and the router."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run([kubectl, "kustomize", str(REPLICAS)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(done.stdout)}
    server = rendered[("Deployment", "gptoss-server")]
    assert server["spec"]["replicas"] == _patch()["spec"]["replicas"]
    assert server["spec"]["strategy"]["type"] == "RollingUpdate"
    (container,) = server["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in container["env"]]
    assert {e["name"] for e in _container()["env"]} | {"GPTOSS_STORE__URL", "GPTOSS_SEAL_KEY"} == set(names)
    assert container["readinessProbe"] == _container()["readinessProbe"]
    assert rendered[("PersistentVolumeClaim", "gptoss-models")]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert set(_overlay()) <= set(rendered)
