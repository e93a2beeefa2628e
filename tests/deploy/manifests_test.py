#!/usr/bin/python3
"""Checks what can be checked of deploy/ without a Docker engine or a cluster.

- deploy/Dockerfile builds like CI: its build stage runs deploy/install-deps.sh and the exact cmake
  configure line of .ci/run; the runtime stage installs the runtime list only, runs as non-root,
  exposes the ports its CRUDCAST_* environment listens on and has a HEALTHCHECK; every COPY source
  exists and survives .dockerignore; the image's environment passes `crudcast --check-config`.
- deploy/compose.yaml: every crudcast's upstream is a service of the file, on a port it exposes; the
  default profile is the api and one crudcast on the memory bus; the instances of the `several`
  profile share a NATS service of the file, with JetStream on a volume, in their profile.
- deploy/kubernetes/base: the sidecar's upstream is the app container's port on 127.0.0.1, probes hit
  /healthz and /readyz on the admin port crudcast really binds (0.0.0.0), the Service targets
  crudcast's port, every container is locked down, and the ConfigMap's file with the container's
  environment passes `crudcast --check-config`. One replica on the memory bus.
- deploy/kubernetes/overlays/nats, rendered like `kubectl kustomize` (resources and strategic-merge
  patches): all of the above, several replicas, and CRUDCAST_BUS names a Service of the overlay that
  reaches a locked-down NATS StatefulSet with JetStream on a persistent volume. Where kubectl is on the
  PATH, its rendering of both folders must match this script's.

Usage: manifests_test.py CRUDCAST_BINARY SOURCE_DIR
"""
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

BINARY, SOURCE = sys.argv[1], sys.argv[2]
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def known_env_vars():
    out = subprocess.run([BINARY, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"env (CRUDCAST_[A-Z_]+)", out))


def check_config(env, args=()):
    """Runs crudcast --check-config with only `env`; returns {setting: (value, source)}."""
    run = subprocess.run([BINARY, "--check-config", *args], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", **env})
    if not check(run.returncode == 0, f"--check-config {args} with {env} exited {run.returncode}: {run.stderr}"):
        return {}
    lines = {}
    for line in run.stdout.splitlines():
        name, rest = line.split(" = ", 1)
        value, source = rest.rsplit("  (", 1)
        lines[name] = (value, source.rstrip(")"))
    return lines


def port_of(address):
    return int(address.rsplit(":", 1)[1])


# --- Dockerfile ---------------------------------------------------------------------------------

def dockerfile_instructions(path):
    """[(stage_index, INSTRUCTION, arguments)] with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", open(path).read())
    stage, result = -1, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        result.append((stage, word, " ".join(rest.split())))
    return result


def dockerignored(path, patterns):
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        # A pattern matches the path or any of its parent directories.
        if any(fnmatch.fnmatch("/".join(parts[:i]), pattern) or
               fnmatch.fnmatch("/".join(parts[:i]), "**/" + pattern) or
               (pattern.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pattern[3:]))
               for i in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def check_dockerfile(env_vars):
    instructions = dockerfile_instructions(os.path.join(SOURCE, "deploy/Dockerfile"))
    stages = [args for _, word, args in instructions if word == "FROM"]
    for args in stages:
        check(args.split()[0] == "debian:bookworm-slim", f"Dockerfile: stage not on debian:bookworm-slim: FROM {args}")
    names = {args.split()[2]: i for i, args in enumerate(stages) if len(args.split()) == 3}
    build, runtime = names.get("build"), len(stages) - 1
    check(build is not None, "Dockerfile: no stage named build")
    check(stages[-1].split()[-1] == "runtime", "Dockerfile: the last (default) stage is not runtime")

    def runs(stage):
        return [args for s, word, args in instructions if s == stage and word == "RUN"]

    ci = open(os.path.join(SOURCE, ".ci/run")).read()
    configure = re.search(r"^cmake -S \. -B build [^>\n]*", ci, re.M)
    check(configure is not None, ".ci/run: no `cmake -S . -B build` line")
    if configure:
        configure = configure.group(0).strip()
        check(any(configure in run for run in runs(build)), f"Dockerfile build stage does not run `{configure}`")
    check(any("ninja -C build" in run for run in runs(build)), "Dockerfile build stage does not run ninja -C build")
    check(any(re.search(r"\bsh deploy/install-deps.sh build\b", run) for run in runs(build)),
          "Dockerfile build stage does not run deploy/install-deps.sh build")
    check(any(re.search(r"install-deps.sh runtime\b", run) for run in runs(runtime)),
          "Dockerfile runtime stage does not run install-deps.sh runtime")

    def last(stage, word):
        found = [args for s, w, args in instructions if s == stage and w == word]
        return found[-1] if found else None

    user = last(runtime, "USER") or "root"
    check(user.split(":")[0] not in ("root", "0"), f"Dockerfile runtime runs as {user}")
    env = {}
    for s, word, args in instructions:
        if s == runtime and word == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(args)))
    for name in env:
        check(not name.startswith("CRUDCAST_") or name in env_vars, f"Dockerfile: ENV {name} is no crudcast setting")
    exposed = {int(p.split("/")[0]) for s, w, args in instructions if s == runtime and w == "EXPOSE" for p in args.split()}
    for name in ("CRUDCAST_LISTEN", "CRUDCAST_ADMIN_LISTEN"):
        check(name in env and env[name].startswith("0.0.0.0:"), f"Dockerfile: {name} must bind 0.0.0.0 in a container")
        check(name in env and port_of(env[name]) in exposed, f"Dockerfile: port of {name} not in EXPOSE {exposed}")
    healthcheck = last(runtime, "HEALTHCHECK") or ""
    check("CMD" in healthcheck, "Dockerfile runtime has no HEALTHCHECK CMD")
    copies = [args for s, w, args in instructions if w == "COPY"]
    check(any(c.startswith("deploy/docker-healthcheck.sh ") and "crudcast-healthcheck" in c for c in copies) and
          "crudcast-healthcheck" in healthcheck, "Dockerfile: HEALTHCHECK does not run the copied docker-healthcheck.sh")
    check(last(runtime, "ENTRYPOINT") == '["crudcast"]', "Dockerfile: ENTRYPOINT is not crudcast")

    ignore = [line.strip() for line in open(os.path.join(SOURCE, ".dockerignore"))
              if line.strip() and not line.startswith("#")]
    for args in copies:
        if args.startswith("--from"):
            continue
        for source in args.split()[:-1]:
            if source == ".":
                continue
            check(os.path.exists(os.path.join(SOURCE, source)), f"Dockerfile: COPY source {source} does not exist")
            check(not dockerignored(source, ignore), f"Dockerfile: COPY source {source} is excluded by .dockerignore")
    for needed in ("CMakeLists.txt", "config/settings.cpp", "gateway/main.cpp", "deploy/install-deps.sh"):
        check(not dockerignored(needed, ignore), f".dockerignore excludes {needed}, which the build needs")
    for junk in ("build/crudcast", "build-asan/x", ".git/HEAD", "examples/node/node_modules/ws/index.js"):
        check(dockerignored(junk, ignore), f".dockerignore lets {junk} into the build context")

    settings = check_config({**env, "CRUDCAST_UPSTREAM": "http://api:3000"})
    if settings:
        check(settings["admin-listen"] == (env["CRUDCAST_ADMIN_LISTEN"], "env"), f"image admin-listen: {settings['admin-listen']}")


# --- compose ------------------------------------------------------------------------------------

def published_host_ports(service):
    """The host ports of `ports:` entries ("8080:8080", "127.0.0.1:9901:9901")."""
    return [str(p).split(":")[-2] for p in service.get("ports", []) if ":" in str(p)]


def check_compose_instance(name, service, services, env_vars):
    """One crudcast service: upstream and bus are services of the file, its settings pass --check-config."""
    env = {k: str(v) for k, v in service["environment"].items()}
    for var in env:
        check(var in env_vars, f"compose {name}: {var} is no crudcast setting")
    upstream = re.fullmatch(r"http://([^:/]+):(\d+)", env.get("CRUDCAST_UPSTREAM", ""))
    if check(upstream is not None, f"compose {name}: CRUDCAST_UPSTREAM is not http://service:port"):
        host, port = upstream.group(1), upstream.group(2)
        check(host in services, f"compose {name}: upstream host {host} is not a service")
        check(port in [str(p) for p in services.get(host, {}).get("expose", [])], f"compose: {host} does not expose {port}")
        check(host in service.get("depends_on", []), f"compose: {name} does not depend on {host}")
    if "CRUDCAST_BUS" in env:
        check_compose_bus(name, service, env["CRUDCAST_BUS"], services)
    check(service["healthcheck"]["test"] == ["CMD", "crudcast-healthcheck"], f"compose {name}: healthcheck")
    check(int(service["stop_grace_period"].rstrip("s")) > 10, f"compose {name}: stop_grace_period must exceed drain-timeout")
    check(service.get("read_only") is True and service.get("cap_drop") == ["ALL"], f"compose {name}: not locked down")
    check_config({"CRUDCAST_LISTEN": "0.0.0.0:8080", "CRUDCAST_ADMIN_LISTEN": "0.0.0.0:9901", **env})


def check_compose_bus(name, service, bus, services):
    """A broker bus names a service of the file that runs NATS with JetStream on a volume, in the profile."""
    match = re.fullmatch(r"nats://([^:/@]+):(\d+)", bus)
    if not check(match is not None, f"compose {name}: CRUDCAST_BUS {bus} is not nats://service:port"):
        return
    host, port = match.group(1), match.group(2)
    broker = services.get(host)
    if not check(broker is not None, f"compose {name}: bus host {host} is not a service"):
        return
    check(port in [str(p) for p in broker.get("expose", [])], f"compose: {host} does not expose {port}")
    check(host in service.get("depends_on", []), f"compose: {name} does not depend on {host}")
    check(str(broker.get("image", "")).startswith("nats:"), f"compose: {host} is not the official nats image")
    command = broker.get("command", [])
    check("-js" in command, f"compose: {host} runs without JetStream (-js), which crudcast needs")
    store = command[command.index("-sd") + 1] if "-sd" in command[:-1] else None
    check(store is not None and any(str(v).endswith(":" + store) for v in broker.get("volumes", [])),
          f"compose: {host}'s JetStream store (-sd {store}) is not on a volume")
    check(set(service.get("profiles", [])) <= set(broker.get("profiles", [])),
          f"compose: {name}'s profiles {service.get('profiles')} may start it without {host}")


def check_compose(env_vars):
    compose = yaml.safe_load(open(os.path.join(SOURCE, "deploy/compose.yaml")))
    services = compose["services"]
    image = services["crudcast"]["image"]
    instances = {name: s for name, s in services.items() if s.get("image") == image}
    # The default profile is the demo as it always was: the api and one crudcast on the memory bus.
    check("profiles" not in services["crudcast"], "compose: crudcast is no longer in the default profile")
    check("CRUDCAST_BUS" not in services["crudcast"]["environment"], "compose: the default crudcast left the memory bus")
    on_broker = [name for name, s in instances.items() if "CRUDCAST_BUS" in s.get("environment", {})]
    check(len(on_broker) >= 2, f"compose: fewer than two crudcast instances share a broker: {on_broker}")
    for name in on_broker:
        check(services[name].get("profiles"), f"compose: {name} (on a broker) starts in the default profile")
    for name, service in instances.items():
        check_compose_instance(name, service, services, env_vars)
    published = [p for s in services.values() for p in published_host_ports(s)]
    check(len(published) == len(set(published)), f"compose: a host port is published twice: {sorted(published)}")
    for name, service in services.items():
        build = service.get("build", {})
        check(os.path.exists(os.path.join(SOURCE, "deploy", build.get("context", "."), build.get("dockerfile", ""))),
              f"compose: {name}'s Dockerfile does not exist")


# --- Kubernetes ---------------------------------------------------------------------------------

def strategic_merge(base, patch):
    """The part of kustomize's strategic merge the overlays use: maps merge key by key, lists of
    named items (containers, env, ports, volumes) merge by name, any other list is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i
                                                                   for i in base + patch):
        names = [item["name"] for item in patch]
        merged = [strategic_merge(item, patch[names.index(item["name"])]) if item["name"] in names else item
                  for item in base]
        known = {item["name"] for item in base}
        return [item for item in patch if item["name"] not in known] + merged
    return patch


def render(folder):
    """The resources a kustomization folder stands for (resources, then patches), like kubectl kustomize."""
    kustomization = yaml.safe_load(open(os.path.join(folder, "kustomization.yaml")))
    check(kustomization.get("kind") == "Kustomization", f"{folder}: kustomization.yaml is no Kustomization")
    docs = []
    for resource in kustomization.get("resources", []):
        path = os.path.normpath(os.path.join(folder, resource))
        if not check(os.path.exists(path), f"kustomization {folder}: {resource} does not exist"):
            continue
        docs += render(path) if os.path.isdir(path) else [d for d in yaml.safe_load_all(open(path)) if d]
    for patch in kustomization.get("patches", []):
        change = yaml.safe_load(open(os.path.join(folder, patch["path"])))
        targets = [i for i, d in enumerate(docs) if d["kind"] == change["kind"] and
                   d["metadata"]["name"] == change["metadata"]["name"]]
        if check(len(targets) == 1, f"kustomization {folder}: patch {patch['path']} matches {len(targets)} resources"):
            docs[targets[0]] = strategic_merge(docs[targets[0]], change)
    return docs


def canonical(value):
    """A form for comparing renderings: named items sorted by name (kustomize may order them otherwise)."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [canonical(v) for v in value]
        if all(isinstance(i, dict) and "name" in i for i in items):
            items.sort(key=lambda i: i["name"])
        return items
    return value


def check_against_kubectl(folder, docs):
    """Where kubectl is installed (it is no Debian package, so CI may lack it), its rendering of the
    folder must be the one checked here."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print(f"  (no kubectl on the PATH: {os.path.relpath(folder, SOURCE)} checked as rendered by this script)")
        return
    run = subprocess.run([kubectl, "kustomize", folder], capture_output=True, text=True)
    if not check(run.returncode == 0, f"kubectl kustomize {folder}: {run.stderr.strip()}"):
        return
    theirs = sorted(json.dumps(canonical(d), sort_keys=True) for d in yaml.safe_load_all(run.stdout) if d)
    ours = sorted(json.dumps(canonical(d), sort_keys=True) for d in docs)
    check(theirs == ours, f"kubectl kustomize {folder} renders otherwise than this script: "
          f"only kubectl: {sorted(set(theirs) - set(ours))[:1]}, only here: {sorted(set(ours) - set(theirs))[:1]}")


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    check(len(found) == 1, f"kubernetes: {len(found)} resources of kind {kind} {name or ''}")
    return found[0] if found else {"kind": kind, "metadata": {"name": name}, "spec": {}, "data": {}}


def check_locked_down(pod, what):
    check(pod["securityContext"].get("runAsNonRoot") is True, f"{what}: pod is not runAsNonRoot")
    for container in pod["containers"]:
        security = container.get("securityContext", {})
        name = container["name"]
        check(security.get("readOnlyRootFilesystem") is True, f"{what}: {name} root filesystem is writable")
        check(security.get("allowPrivilegeEscalation") is False, f"{what}: {name} may escalate privileges")
        check(security.get("capabilities", {}).get("drop") == ["ALL"], f"{what}: {name} keeps capabilities")
        for kind in ("requests", "limits"):
            check({"cpu", "memory"} <= container.get("resources", {}).get(kind, {}).keys(), f"{what}: {name} {kind}")


def check_sidecar_deployment(docs, env_vars, what):
    """The Deployment of `docs`: sidecar wiring, probes, Service, lock-down, and --check-config of its
    ConfigMap with its environment. Returns the sidecar's environment."""
    deployment = one(docs, "Deployment")
    service = next(d for d in docs if d["kind"] == "Service" and
                   d["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items())
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    sidecar = containers.pop("crudcast")
    app = next(iter(containers.values()))
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    for name in env:
        check(name in env_vars, f"{what}: {name} is no crudcast setting")

    app_listen = app["args"][app["args"].index("--listen") + 1]
    check(app_listen.startswith("127.0.0.1:"), f"{what}: the app should listen on 127.0.0.1 only, not {app_listen}")
    check(env.get("CRUDCAST_UPSTREAM") == f"http://127.0.0.1:{port_of(app_listen)}",
          f"{what}: upstream {env.get('CRUDCAST_UPSTREAM')} is not the app's port {app_listen}")

    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    check(env.get("CRUDCAST_ADMIN_LISTEN", "").startswith("0.0.0.0:"), f"{what}: kubelet probes need admin on 0.0.0.0")
    check(ports.get("admin") == port_of(env.get("CRUDCAST_ADMIN_LISTEN", ":0")), f"{what}: admin port mismatch")
    check(ports.get("http") == port_of(env.get("CRUDCAST_LISTEN", ":0")), f"{what}: http port mismatch")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = sidecar.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") == "admin", f"{what}: {probe} is not GET {path} on admin")
    target = service["spec"]["ports"][0]["targetPort"]
    check(target == "http" or target == ports.get("http"), f"{what}: service targetPort {target} is not crudcast's port")
    check_locked_down(pod, what)

    config_path = sidecar["args"][sidecar["args"].index("--config") + 1]
    mount = next(m for m in sidecar["volumeMounts"] if config_path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = one(docs, "ConfigMap", volume["configMap"]["name"])
    key = config_path[len(mount["mountPath"]) + 1:]
    check(key in configmap["data"], f"{what}: configmap has no key {key}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, key)
        with open(path, "w") as out:
            out.write(configmap["data"].get(key, ""))
        settings = check_config(env, ["--config", path])
    if settings:
        check(settings.get("routes", ("", ""))[0].endswith("rules"), f"{what}: configmap: no route rules read")
        drain = settings["drain-timeout"][0]
        check(drain.endswith("s") and int(drain[:-1]) < pod["terminationGracePeriodSeconds"],
              f"{what}: terminationGracePeriodSeconds must exceed drain-timeout {drain}")
    return env, deployment


def check_kubernetes(env_vars):
    folder = os.path.join(SOURCE, "deploy/kubernetes/base")
    docs = render(folder)
    check_against_kubectl(folder, docs)
    env, deployment = check_sidecar_deployment(docs, env_vars, "kubernetes base")
    # Several replicas on the memory bus would split the stream.
    check("CRUDCAST_BUS" in env or deployment["spec"]["replicas"] == 1, "kubernetes base: replicas > 1 on the memory bus")


def check_kubernetes_nats(env_vars):
    """The overlay: several replicas whose bus is a NATS Service of the overlay, running JetStream on a
    persistent volume, locked down like the rest."""
    what = "kubernetes overlays/nats"
    folder = os.path.join(SOURCE, "deploy/kubernetes/overlays/nats")
    docs = render(folder)
    check_against_kubectl(folder, docs)
    env, deployment = check_sidecar_deployment(docs, env_vars, what)
    check(deployment["spec"]["replicas"] >= 2, f"{what}: replicas {deployment['spec']['replicas']}, not several")
    bus = re.fullmatch(r"nats://([^:/@]+):(\d+)", env.get("CRUDCAST_BUS", ""))
    if not check(bus is not None, f"{what}: CRUDCAST_BUS {env.get('CRUDCAST_BUS')} is not nats://service:port"):
        return
    service = one(docs, "Service", bus.group(1))
    port = next((p for p in service["spec"].get("ports", []) if str(p["port"]) == bus.group(2)), None)
    check(port is not None, f"{what}: Service {bus.group(1)} has no port {bus.group(2)}")
    nats = one(docs, "StatefulSet")
    labels = nats["spec"].get("template", {}).get("metadata", {}).get("labels", {})
    check(service["spec"].get("selector", {"": ""}).items() <= labels.items(),
          f"{what}: Service {bus.group(1)} does not select NATS")
    app_labels = deployment["spec"]["template"]["metadata"]["labels"]
    check(not any(d["kind"] == "Service" and d["spec"]["selector"].items() <= labels.items() and
                  d["spec"]["selector"].items() <= app_labels.items() for d in docs),
          f"{what}: one Service selects both the API pods and NATS")
    governing = one(docs, "Service", nats["spec"].get("serviceName"))
    check(governing["spec"].get("clusterIP") == "None", f"{what}: the StatefulSet's Service is not headless")
    if "template" not in nats["spec"]:
        return
    pod = nats["spec"]["template"]["spec"]
    server = pod["containers"][0]
    check(server["image"].startswith("nats:"), f"{what}: the StatefulSet does not run the official nats image")
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    check(port is None or ports.get(port["targetPort"]) == 4222, f"{what}: Service port does not reach NATS's 4222")
    args = server["args"]
    check("-js" in args, f"{what}: NATS runs without JetStream (-js)")
    store = args[args.index("-sd") + 1] if "-sd" in args[:-1] else None
    claims = {c["metadata"]["name"] for c in nats["spec"].get("volumeClaimTemplates", [])}
    check(any(m["mountPath"] == store and m["name"] in claims for m in server.get("volumeMounts", [])),
          f"{what}: the JetStream store (-sd {store}) is not on a persistent volume claim")
    for probe in ("livenessProbe", "readinessProbe"):
        check(server.get(probe, {}).get("httpGet", {}).get("port") == "monitor" and "monitor" in ports,
              f"{what}: NATS {probe} is not on its monitoring port")
    check_locked_down(pod, what + " NATS")


env_vars = known_env_vars()
check(len(env_vars) > 20, f"crudcast --help lists only {env_vars}")
for part in (check_dockerfile, check_compose, check_kubernetes, check_kubernetes_nats):
    before = len(failures)
    try:
        part(env_vars)
    except Exception as error:  # a missing key is a failure of that part, reported with the rest
        failures.append(f"{part.__name__}: {type(error).__name__}: {error}")
    print(f"{part.__name__}: {'ok' if len(failures) == before else 'FAILED'}")
for failure in failures:
    print("FAIL:", failure)
sys.exit(1 if failures else 0)
