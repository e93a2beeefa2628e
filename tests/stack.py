"""stack.py: the demo backend and crudcast as child processes for the Python tests (browser/, e2e/), each on a
port of its own choosing (port 0), read back from the line each prints once it listens: no port
races, no polling for a listener.

    with Stack(crudcast_binary, backend_binary) as stack:
        stack.port, stack.admin_port
        status, body = stack.request("POST", "/api/authors", {"name": "Ada"})
"""
import json
import queue
import re
import subprocess
import threading
import time
import urllib.request


class Process:
    """A child whose stdout, stderr or both ("both": stderr into stdout) is read line by line on a
    thread, so it never blocks."""

    def __init__(self, name, args, stream="stdout"):
        self.name = name
        self.lines = []
        self._queue = queue.Queue()
        kwargs = {"stdout": subprocess.PIPE, "stderr": None} if stream == "stdout" else \
                 {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if stream == "both" else \
                 {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, text=True, errors="replace", **kwargs)
        pipe = self.proc.stderr if stream == "stderr" else self.proc.stdout
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe):
        for line in pipe:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, pattern, timeout=15.0):
        """The first match of regex `pattern` in a new line, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no line matching {pattern!r} in {timeout}s")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} exited ({self.proc.wait()}) before printing {pattern!r}: "
                                   + "\n".join(self.lines[-20:]))
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Stack:
    """The demo backend with crudcast in front of it, admin listener on (both on loopback)."""

    def __init__(self, crudcast, backend, admin=True, extra_args=()):
        self._binary, self._admin, self._extra_args = crudcast, admin, tuple(extra_args)
        self.backend = Process("demo backend", [backend, "--listen", "127.0.0.1:0"])
        self.crudcast = None
        self.port, self.admin_port = 0, (0 if admin else None)
        try:
            self.backend_port = int(self.backend.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)").group(1))
            self.start_crudcast()
        except BaseException:
            self.close()
            raise

    def start_crudcast(self):
        """Starts crudcast: on any free ports the first time, on the same ports again after stop_crudcast()."""
        self.crudcast = Process("crudcast", [
            self._binary, "--listen", f"127.0.0.1:{self.port}", "--upstream", f"http://127.0.0.1:{self.backend_port}",
            "--admin-listen", f"127.0.0.1:{self.admin_port}" if self._admin else "off", "--log-format", "json",
            "--threads", "2", *self._extra_args], stream="stderr")
        started = json.loads(self.crudcast.wait_for_line(r'^\{.*"msg":"crudcast started".*\}$').group(0))
        self.port = int(started["listen"].rsplit(":", 1)[1])
        if self._admin:
            self.admin_port = int(started["admin"].rsplit(":", 1)[1])

    def stop_crudcast(self):
        code = self.crudcast.stop()
        assert code == 0, f"crudcast exited {code}"

    def request(self, method, path, body=None, headers=None):
        """A request through crudcast: (status, parsed JSON body or None, response headers)."""
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers=all_headers)
        with urllib.request.urlopen(req, timeout=10) as res:
            raw = res.read()
            return res.status, (json.loads(raw) if raw else None), res.headers

    def close(self):
        if self.crudcast:
            self.crudcast.stop()
        self.backend.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
