"""Runs one command as several tf.distribute workers on 127.0.0.1.

Each worker is a subprocess with its own TF_CONFIG (free ports picked here)
and one CPU device. Every run is bounded in time and leaves no process behind.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def worker_env(index, ports, extra=None):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    env = dict(os.environ)
    env["TF_CONFIG"] = json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}
    )
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [ROOT, os.path.join(ROOT, "tests"), env.get("PYTHONPATH")])
    )
    env.update(extra or {})
    return env


class Workers:
    """`count` workers running `argv` (a list, or a function of the index)."""

    def __init__(self, argv, count=2, env=None, log_dir=None):
        ports = free_ports(count)
        self.logs = []
        self.processes = []
        for index in range(count):
            command = argv(index) if callable(argv) else argv
            log = open(os.path.join(log_dir, f"worker-{index}.log"), "w+")  # noqa: SIM115
            self.logs.append(log)
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, *command],
                    cwd=ROOT,
                    env=worker_env(index, ports, env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def wait(self, timeout):
        """Waits for every worker; returns their exit codes (kills at timeout)."""
        deadline = time.monotonic() + timeout
        try:
            for process in self.processes:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"workers still running after {timeout} s:\n" + self.output(-1)
            ) from None
        return [process.returncode for process in self.processes]

    def kill(self, index=None):
        targets = self.processes if index is None else [self.processes[index]]
        for process in targets:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def output(self, index):
        log = self.logs[index]
        log.flush()
        log.seek(0)
        return log.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        for log in self.logs:
            log.close()


def result_line(text, tag="RESULT"):
    line = next(x for x in text.splitlines() if x.startswith(tag + " "))
    return json.loads(line[len(tag) + 1 :])
