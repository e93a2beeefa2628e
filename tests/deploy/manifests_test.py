#!/usr/bin/python3
"""Checks what can be checked of deploy/ without a Docker engine or a cluster.

- deploy/Dockerfile builds like CI: its build stage runs deploy/install-deps.sh and the exact cmake
  configure line of .ci/run; the runtime stage installs the runtime list only, runs as non-root,
  exposes the ports its CRUDCAST_* environment listens on and has a HEALTHCHECK; every COPY source
  exists and survives .dockerignore; the image's environment passes `crudcast --check-config`.
- deploy/compose.yaml: crudcast's upstream is a service of the file, on a port it exposes.
- deploy/kubernetes/: the sidecar's upstream is the app container's port on 127.0.0.1, probes hit
  /healthz and /readyz on the admin port crudcast really binds (0.0.0.0), the Service targets
  crudcast's port, every container is locked down, and the ConfigMap's file with the container's
  environment passes `crudcast --check-config`.

Usage: manifests_test.py CRUDCAST_BINARY SOURCE_DIR
"""
import fnmatch
import os
import re
import shlex
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

def check_compose(env_vars):
    compose = yaml.safe_load(open(os.path.join(SOURCE, "deploy/compose.yaml")))
    services = compose["services"]
    crudcast = services["crudcast"]
    env = {k: str(v) for k, v in crudcast["environment"].items()}
    for name in env:
        check(name in env_vars, f"compose: {name} is no crudcast setting")
    upstream = re.fullmatch(r"http://([^:/]+):(\d+)", env.get("CRUDCAST_UPSTREAM", ""))
    if check(upstream is not None, "compose: CRUDCAST_UPSTREAM is not http://service:port"):
        host, port = upstream.group(1), upstream.group(2)
        check(host in services, f"compose: upstream host {host} is not a service")
        check(port in [str(p) for p in services.get(host, {}).get("expose", [])], f"compose: {host} does not expose {port}")
        check(host in crudcast.get("depends_on", []), f"compose: crudcast does not depend on {host}")
    for name, service in services.items():
        build = service.get("build", {})
        check(os.path.exists(os.path.join(SOURCE, "deploy", build.get("context", "."), build.get("dockerfile", ""))),
              f"compose: {name}'s Dockerfile does not exist")
    check(crudcast["healthcheck"]["test"] == ["CMD", "crudcast-healthcheck"], "compose: crudcast healthcheck")
    check(int(crudcast["stop_grace_period"].rstrip("s")) > 10, "compose: stop_grace_period must exceed drain-timeout")
    check_config({"CRUDCAST_LISTEN": "0.0.0.0:8080", "CRUDCAST_ADMIN_LISTEN": "0.0.0.0:9901", **env})


# --- Kubernetes ---------------------------------------------------------------------------------

def check_kubernetes(env_vars):
    folder = os.path.join(SOURCE, "deploy/kubernetes")
    docs = {}
    for name in sorted(os.listdir(folder)):
        for doc in yaml.safe_load_all(open(os.path.join(folder, name))):
            docs[doc["kind"]] = doc
    for resource in docs["Kustomization"]["resources"]:
        check(os.path.exists(os.path.join(folder, resource)), f"kustomization: {resource} does not exist")
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    sidecar = containers.pop("crudcast")
    app = next(iter(containers.values()))
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    for name in env:
        check(name in env_vars, f"deployment: {name} is no crudcast setting")

    app_listen = app["args"][app["args"].index("--listen") + 1]
    check(app_listen.startswith("127.0.0.1:"), f"deployment: the app should listen on 127.0.0.1 only, not {app_listen}")
    check(env.get("CRUDCAST_UPSTREAM") == f"http://127.0.0.1:{port_of(app_listen)}",
          f"deployment: upstream {env.get('CRUDCAST_UPSTREAM')} is not the app's port {app_listen}")

    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    check(env.get("CRUDCAST_ADMIN_LISTEN", "").startswith("0.0.0.0:"), "deployment: kubelet probes need admin on 0.0.0.0")
    check(ports.get("admin") == port_of(env.get("CRUDCAST_ADMIN_LISTEN", ":0")), "deployment: admin port mismatch")
    check(ports.get("http") == port_of(env.get("CRUDCAST_LISTEN", ":0")), "deployment: http port mismatch")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = sidecar.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") == "admin", f"deployment: {probe} is not GET {path} on admin")
    target = docs["Service"]["spec"]["ports"][0]["targetPort"]
    check(target == "http" or target == ports.get("http"), f"service: targetPort {target} is not crudcast's port")
    check(docs["Service"]["spec"]["selector"].items() <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items(),
          "service: selector does not match the pod")

    check(pod["securityContext"].get("runAsNonRoot") is True, "deployment: pod is not runAsNonRoot")
    for container in pod["containers"]:
        security = container.get("securityContext", {})
        name = container["name"]
        check(security.get("readOnlyRootFilesystem") is True, f"deployment: {name} root filesystem is writable")
        check(security.get("allowPrivilegeEscalation") is False, f"deployment: {name} may escalate privileges")
        check(security.get("capabilities", {}).get("drop") == ["ALL"], f"deployment: {name} keeps capabilities")
        for kind in ("requests", "limits"):
            check({"cpu", "memory"} <= container.get("resources", {}).get(kind, {}).keys(), f"deployment: {name} {kind}")

    config_path = sidecar["args"][sidecar["args"].index("--config") + 1]
    mount = next(m for m in sidecar["volumeMounts"] if config_path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = docs["ConfigMap"]
    check(volume["configMap"]["name"] == configmap["metadata"]["name"], "deployment: volume names another ConfigMap")
    key = config_path[len(mount["mountPath"]) + 1:]
    check(key in configmap["data"], f"configmap: no key {key}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, key)
        with open(path, "w") as out:
            out.write(configmap["data"].get(key, ""))
        settings = check_config(env, ["--config", path])
    if settings:
        check(settings.get("routes", ("", ""))[0].endswith("rules"), "configmap: no route rules read")
        drain = settings["drain-timeout"][0]
        check(drain.endswith("s") and int(drain[:-1]) < pod["terminationGracePeriodSeconds"],
              f"deployment: terminationGracePeriodSeconds must exceed drain-timeout {drain}")


env_vars = known_env_vars()
check(len(env_vars) > 20, f"crudcast --help lists only {env_vars}")
for part in (check_dockerfile, check_compose, check_kubernetes):
    before = len(failures)
    try:
        part(env_vars)
    except Exception as error:  # a missing key is a failure of that part, reported with the rest
        failures.append(f"{part.__name__}: {type(error).__name__}: {error}")
    print(f"{part.__name__}: {'ok' if len(failures) == before else 'FAILED'}")
for failure in failures:
    print("FAIL:", failure)
sys.exit(1 if failures else 0)
