"""deploy/k8s: every manifest valid against the Kubernetes schemas bundled with
kubernetes-validate (offline, strict: an unknown field is an error), the
ServiceMonitor against its own small schema, the API Deployment's probes and
settings as the README says, and every LEDGER_* variable named under deploy/ a
real setting."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from ledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# The oldest Kubernetes the manifests are meant for, and the newest the validator knows.
VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version() + ".0"]
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"):
               Path(__file__).with_name("servicemonitor.schema.json")}
# Applied by hand, not by `kubectl apply -k` (README "Deploying").
NOT_IN_KUSTOMIZATION = {"secret.example.yaml", "migrate-job.yaml", "kustomization.yaml"}


def manifests() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> resource, over every manifest but the kustomization."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in manifests():
        if path.name == "kustomization.yaml":
            continue
        for doc in documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} defined twice"
            found[key] = doc
    return found


def test_the_manifests_are_there() -> None:
    kinds = sorted(kind for kind, _ in resources())
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Job", "PodDisruptionBudget",
                     "Secret", "Secret", "Service", "ServiceMonitor"]


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
@pytest.mark.parametrize("version", VERSIONS)
def test_manifest_is_valid(path: Path, version: str) -> None:
    docs = documents(path)
    assert docs, f"{path.name} holds no resource"
    for doc in docs:
        crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if crd is not None:
            jsonschema.validate(doc, json.loads(crd.read_text()))
        elif doc["kind"] == "Kustomization":
            listed = set(doc["resources"])
            expected = {p.name for p in manifests()} - NOT_IN_KUSTOMIZATION
            assert listed == expected, "kustomization.yaml must list every manifest"
        else:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_catches_a_typo() -> None:
    api = resources()[("Deployment", "ledger-api")]
    broken = json.loads(json.dumps(api))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)
    monitor = json.loads(json.dumps(resources()[("ServiceMonitor", "ledger-api")]))
    monitor["spec"]["endpoints"][0]["pathh"] = "/metrics"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, json.loads(CRD_SCHEMAS[
            ("monitoring.coreos.com/v1", "ServiceMonitor")].read_text()))


def test_the_validator_command_passes_on_every_manifest() -> None:
    """The command CI people would run by hand: offline (bundled schemas), strict;
    kinds it has no schema for (CRDs, Kustomization) are warnings, checked above."""
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", VERSIONS[0],
         *map(str, manifests())],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed for resource deployment/ledger-api" in result.stdout + result.stderr


def _pod(kind: str, name: str) -> dict[str, Any]:
    return resources()[(kind, name)]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _env(container: dict[str, Any]) -> dict[str, str]:
    """The container's LEDGER_* settings: env, plus the ConfigMap it takes whole."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values.update(resources()[("ConfigMap", source["configMapRef"]["name"])]["data"])
        if "secretRef" in source:
            values.update(resources()[("Secret", source["secretRef"]["name"])]["stringData"])
    values.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return values


def _non_root(pod: dict[str, Any]) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts  # the only writable place on a read-only root
        assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
        assert container["resources"]["requests"] and container["resources"]["limits"]


def test_api_deployment_probes_env_and_security() -> None:
    deployment = resources()[("Deployment", "ledger-api")]
    assert deployment["spec"]["replicas"] >= 2
    pod = _pod("Deployment", "ledger-api")
    (api,) = pod["containers"]
    assert api["command"][:2] == ["ledger", "serve"]
    assert "0.0.0.0" in api["command"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    # /ready waits up to 5 s for the database before its 503; the probe must wait longer.
    assert api["readinessProbe"]["timeoutSeconds"] > 5
    port = {p["name"]: p["containerPort"] for p in api["ports"]}["http"]
    assert f"--port {port}" in " ".join(api["command"])
    env = _env(api)
    assert env["LEDGER_JOBS_IN_SERVE"] == "false"  # jobs run in ledger-jobs only
    assert env["LEDGER_DATABASE_URL"].startswith("postgresql://")
    assert env["LEDGER_REDIS_URL"].startswith("redis://")
    _non_root(pod)
    _signing_key_is_a_secret_file(pod, api, env)


def _signing_key_is_a_secret_file(pod: dict[str, Any], container: dict[str, Any],
                                  env: dict[str, str]) -> None:
    key_path = Path(env["LEDGER_SIGNING_KEY_PATH"])
    mount = next(m for m in container["volumeMounts"]
                 if m["mountPath"] == str(key_path.parent))
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert {"key": "signing.pem", "path": key_path.name} in volume["secret"]["items"]
    assert ("Secret", volume["secret"]["secretName"]) in resources()


def test_jobs_runner_and_migration() -> None:
    deployment = resources()[("Deployment", "ledger-jobs")]
    assert deployment["spec"]["replicas"] == 1
    pod = _pod("Deployment", "ledger-jobs")
    (jobs,) = pod["containers"]
    assert jobs["command"] == ["ledger", "jobs"]
    env = _env(jobs)
    assert env.get("LEDGER_JOBS_IN_SERVE", "false") == "false"
    _non_root(pod)
    _signing_key_is_a_secret_file(pod, jobs, env)

    migrate = _pod("Job", "ledger-migrate")
    assert migrate["containers"][0]["command"] == ["ledger", "migrate"]
    assert migrate["restartPolicy"] in ("OnFailure", "Never")
    _non_root(migrate)


def test_service_and_monitor_reach_the_api_pods() -> None:
    pod_labels = resources()[("Deployment", "ledger-api")]["spec"]["template"]["metadata"][
        "labels"]
    service = resources()[("Service", "ledger-api")]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    monitor = resources()[("ServiceMonitor", "ledger-api")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"][
        "labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    budget = resources()[("PodDisruptionBudget", "ledger-api")]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_every_image_is_the_one_the_kustomization_sets() -> None:
    (kustomization,) = documents(K8S / "kustomization.yaml")
    names = {image["name"] for image in kustomization["images"]}
    for (kind, name), doc in resources().items():
        if kind in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                assert container["image"].split(":")[0] in names, (kind, name)


def deploy_variables() -> dict[str, list[str]]:
    """Every LEDGER_* name under deploy/, with the files that name it."""
    found: dict[str, list[str]] = {}
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            for name in set(re.findall(r"\bLEDGER_[A-Z0-9_]+\b", path.read_text())):
                found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_variable_in_deploy_is_a_setting() -> None:
    """deploy/ cannot drift from ledger/settings.py: a renamed or removed setting
    fails here, not as a silently ignored variable in production."""
    settings = {f"LEDGER_{name.upper()}" for name in Settings.model_fields}
    found = deploy_variables()
    assert "LEDGER_DATABASE_URL" in found and "LEDGER_JOBS_IN_SERVE" in found
    unknown = {name: files for name, files in found.items() if name not in settings}
    assert not unknown, f"not settings in ledger/settings.py: {unknown}"


def test_every_setting_in_deploy_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in deploy_variables() if f"`{name}`" not in readme)
    assert not missing, f"deploy/ uses settings the README does not describe: {missing}"
