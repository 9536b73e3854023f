"""Drives one Kafka Connect REST API — Apache Kafka Connect's, or `ursa run`'s — through every endpoint with the
third-party client `kafka-connect-py` (plain `requests` where the client has no method: offsets, PATCH config,
loggers, plugin config definitions, bad bodies) and records each answer, so that runtime/tests/
rest_vs_kafka_connect.rs can run the same sequence against both and compare them field by field.

Usage: compare_peer.py URL NAME TOPIC FILE RECORDS

The worker has no connectors; TOPIC has one partition holding RECORDS JSON values; the FileStreamSink connector
NAME (and NAME-put, created by PUT) writes to FILE (and FILE.put). Prints one JSON document on stdout:
{"steps": [{"step", "method", "path", "status", "body"}, ...]} where `path` has NAME as `{connector}` and
`body` is the parsed JSON (null when empty, {"__text__": ...} when not JSON). A condition that never comes
(a state, the records in the file, committed offsets) is recorded as a step with status -1, so the comparison
shows it. Waits poll with a deadline, never a fixed sleep. Exits 0 once the sequence ran, 3 when the client
package is missing.
"""

import json
import os
import sys
import time

PIP = 'python3 -m pip install "kafka-connect-py==1.0.0"'

try:
    import requests
    from kafka_connect import KafkaConnect
except ImportError as e:  # pragma: no cover - the Rust test reports this with the pip command
    print(f"kafka-connect-py is not installed ({e}): {PIP}", file=sys.stderr)
    sys.exit(3)

DEADLINE_S = 60

# Every response `requests` returns, whoever asked (the client or us): the step takes the last one.
RESPONSES = []
_request = requests.Session.request


def _recording(self, method, url, *args, **kwargs):
    response = _request(self, method, url, *args, **kwargs)
    RESPONSES.append(response)
    return response


requests.Session.request = _recording


class Recorder:
    def __init__(self, url, name):
        self.url = url.rstrip("/")
        self.name = name
        self.steps = []

    def record(self, label, response):
        text = response.text
        if not text.strip():
            body = None
        else:
            try:
                body = response.json()
            except ValueError:
                body = {"__text__": text}
        path = response.request.path_url.replace(self.name, "{connector}")
        self.steps.append(
            {
                "step": label,
                "method": response.request.method,
                "path": path,
                "status": response.status_code,
                "body": body,
            }
        )
        print(f"{response.status_code} {response.request.method} {path} ({label})", file=sys.stderr)

    def step(self, label, call):
        """Runs `call` (a client method or `raw`) and records the last HTTP answer it got."""
        RESPONSES.clear()
        try:
            call()
        except (requests.exceptions.HTTPError, ValueError):
            # Errors are answers too; a client that parses an empty body as JSON raises ValueError.
            pass
        if not RESPONSES:
            self.steps.append({"step": label, "method": "", "path": "", "status": -2, "body": None})
            return
        self.record(label, RESPONSES[-1])

    def raw(self, method, path, **kwargs):
        return lambda: requests.request(method, self.url + path, **kwargs)

    def wait(self, label, check):
        """Polls `check` (returning a truthy value when done) until the deadline; a timeout is a step."""
        deadline = time.monotonic() + DEADLINE_S
        pause = 0.01
        last = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except (requests.exceptions.RequestException, ValueError, KeyError, IndexError, TypeError) as e:
                last = repr(e)
            if last is True:
                return True
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
        self.steps.append(
            {"step": f"wait: {label}", "method": "", "path": "", "status": -1, "body": {"last": repr(last)}}
        )
        print(f"timed out waiting for {label} (last: {last!r})", file=sys.stderr)
        return False


def lines_in(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def run(url, name, topic, path, records):
    client = KafkaConnect(url=url)
    r = Recorder(url, name)
    put_name = f"{name}-put"
    config = {
        "connector.class": "FileStreamSink",
        "tasks.max": "1",
        "topics": topic,
        "file": path,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        # Connect takes this from the worker only (1 s in the testkit's worker) and ignores it here.
        "offset.flush.interval.ms": "1000",
    }
    named = {**config, "name": name}
    offsets_path = f"/connectors/{name}/offsets"

    def offsets(offset):
        return {
            "offsets": [
                {"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": offset}}
            ]
        }

    def state():
        s = requests.get(f"{r.url}/connectors/{name}/status").json()
        return s["connector"]["state"], [t["state"] for t in s["tasks"]]

    def wait_state(want):
        def reached():
            connector, tasks = state()
            # A STOPPED connector has no tasks (Connect and ursa alike; a task listed as STOPPED would end the
            # wait too, and the comparison would report it).
            return connector == want and (tasks == [want] or (want == "STOPPED" and tasks == []))

        r.wait(want, reached)

    def committed():
        o = requests.get(r.url + offsets_path).json()["offsets"]
        return [p["offset"]["kafka_offset"] for p in o if p["offset"]]

    # The worker and its plugins.
    r.step("server info", client.get_cluster_info)
    r.step("list, empty", client.list_connectors)
    r.step("plugins", client.list_connector_plugins)
    r.step("plugins, connectorsOnly=false", r.raw("GET", "/connector-plugins?connectorsOnly=false"))
    r.step("plugin config definitions", r.raw("GET", "/connector-plugins/FileStreamSink/config"))
    r.step("validate", lambda: client.validate_connector_config("FileStreamSink", named))
    r.step(
        "validate, bad tasks.max",
        lambda: client.validate_connector_config("FileStreamSink", {**named, "tasks.max": "abc"}),
    )
    r.step(
        "validate, unknown plugin",
        lambda: client.validate_connector_config("NoSuchPlugin", {**named, "connector.class": "NoSuchPlugin"}),
    )

    # Bad creations.
    json_headers = {"Content-Type": "application/json"}
    r.step("create, bad JSON", r.raw("POST", "/connectors", data="{not json", headers=json_headers))
    r.step("create, no config", lambda: client.create_connector({"name": name}))
    r.step(
        "create, bad tasks.max",
        lambda: client.create_connector({"name": name, "config": {**config, "tasks.max": "abc"}}),
    )
    r.step(
        "create, unknown class",
        lambda: client.create_connector({"name": name, "config": {**config, "connector.class": "NoSuchPlugin"}}),
    )
    r.step(
        "create, name mismatch",
        lambda: client.create_connector({"name": name, "config": {**config, "name": "other"}}),
    )
    r.step("list, still empty", client.list_connectors)

    def active_topics():
        return client.list_connector_topics(name)[name]["topics"]

    # Create, then read everything.
    r.step("create", lambda: client.create_connector({"name": name, "config": config}))
    r.step("create, exists", lambda: client.create_connector({"name": name, "config": config}))
    wait_state("RUNNING")
    r.wait(f"{records} lines in the file", lambda: lines_in(path) >= records)
    r.wait(f"offset {records} committed", lambda: committed() == [records])
    r.step("list", client.list_connectors)
    r.step("list, expand=status", lambda: client.list_connectors(expand="status"))
    r.step("list, expand=info", lambda: client.list_connectors(expand="info"))
    r.step("list, expand=status&expand=info", r.raw("GET", "/connectors?expand=status&expand=info"))
    r.step("get", lambda: client.get_connector(name))
    r.step("config", lambda: client.get_connector_config(name))
    r.step("status", lambda: client.get_connector_status(name))
    r.step("tasks", lambda: client.list_connector_tasks(name))
    r.step("task 0 status", lambda: client.get_connector_task_status(name, 0))
    r.step("task 7 status", lambda: client.get_connector_task_status(name, 7))
    r.step("task abc status", lambda: client.get_connector_task_status(name, "abc"))
    r.step("topics", lambda: client.list_connector_topics(name))
    r.step("offsets, running", r.raw("GET", offsets_path))
    r.step("alter offsets, running", r.raw("PATCH", offsets_path, json=offsets(1)))
    r.step("reset offsets, running", r.raw("DELETE", offsets_path))

    # Reconfigure.
    r.step("put config, name mismatch", lambda: client.update_connector(name, {**config, "name": "other"}))
    r.step("put config", lambda: client.update_connector(name, config))
    r.step("patch config", r.raw("PATCH", f"/connectors/{name}/config", json={"tasks.max": "1"}))
    wait_state("RUNNING")

    # Lifecycle.
    r.step("pause", lambda: client.pause_connector(name))
    wait_state("PAUSED")
    r.step("status, paused", lambda: client.get_connector_status(name))
    r.step("resume", lambda: client.resume_connector(name))
    wait_state("RUNNING")
    # First of the restarts: its answer lists the states the worker holds, and only after PAUSED is a RUNNING
    # surely the newest. After a restart, Connect's status store can still show the RUNNING from before it (the
    # RESTARTING it writes reaches its cache later), so a wait for RUNNING can end too soon.
    r.step(
        "restart, includeTasks&onlyFailed",
        lambda: client.restart_connector(name, include_tasks=True, only_failed=True),
    )
    wait_state("RUNNING")
    r.step("restart", lambda: client.restart_connector(name))
    wait_state("RUNNING")
    r.step("restart, includeTasks", lambda: client.restart_connector(name, include_tasks=True))
    wait_state("RUNNING")
    r.step("restart task 0", lambda: client.restart_connector_task(name, 0))
    wait_state("RUNNING")
    r.step("topics reset, running", lambda: client.reset_connector_topics(name))
    # Active topics (KIP-558): a reset forgets the topic until records of it are consumed again; all of them
    # were, so it stays forgotten.
    r.wait("no active topics after the reset", lambda: active_topics() == [])
    r.step("topics, after a reset while running", lambda: client.list_connector_topics(name))

    # Stopped: offsets can be changed.
    r.step("stop", lambda: client.stop_connector(name))
    wait_state("STOPPED")
    r.step("status, stopped", lambda: client.get_connector_status(name))
    r.step("tasks, stopped", lambda: client.list_connector_tasks(name))
    r.step("get, stopped", lambda: client.get_connector(name))
    r.step("offsets, stopped", r.raw("GET", offsets_path))
    r.step("alter offsets", r.raw("PATCH", offsets_path, json=offsets(2)))
    r.step("offsets, altered", r.raw("GET", offsets_path))
    r.step("alter offsets, empty", r.raw("PATCH", offsets_path, json={"offsets": []}))
    r.step("alter offsets, no body", r.raw("PATCH", offsets_path, headers=json_headers))
    r.step("reset offsets", r.raw("DELETE", offsets_path))
    r.step("offsets, reset", r.raw("GET", offsets_path))
    r.step("topics reset, stopped", lambda: client.reset_connector_topics(name))
    r.step("topics, after a reset while stopped", lambda: client.list_connector_topics(name))
    r.step("resume, stopped", lambda: client.resume_connector(name))
    wait_state("RUNNING")
    # The offsets were reset: every record again, after the first copy.
    r.wait(f"{2 * records} lines in the file", lambda: lines_in(path) >= 2 * records)
    # Its records were consumed again: the topic is active again.
    r.wait("the topic active again", lambda: active_topics() == [topic])
    r.step("topics, active again", lambda: client.list_connector_topics(name))

    # Loggers.
    r.step("loggers", r.raw("GET", "/admin/loggers"))
    r.step("logger root", r.raw("GET", "/admin/loggers/root"))

    # An unknown connector, everywhere.
    missing = "no-such-connector"
    for label, call in [
        ("get", lambda: client.get_connector(missing)),
        ("config", lambda: client.get_connector_config(missing)),
        ("status", lambda: client.get_connector_status(missing)),
        ("tasks", lambda: client.list_connector_tasks(missing)),
        ("task 0 status", lambda: client.get_connector_task_status(missing, 0)),
        ("topics", lambda: client.list_connector_topics(missing)),
        ("pause", lambda: client.pause_connector(missing)),
        ("resume", lambda: client.resume_connector(missing)),
        ("stop", lambda: client.stop_connector(missing)),
        ("restart", lambda: client.restart_connector(missing)),
        ("restart, includeTasks", lambda: client.restart_connector(missing, include_tasks=True)),
        ("offsets", r.raw("GET", f"/connectors/{missing}/offsets")),
        ("reset offsets", r.raw("DELETE", f"/connectors/{missing}/offsets")),
        ("delete", lambda: client.delete_connector(missing)),
    ]:
        r.step(f"unknown connector: {label}", call)
    r.step("unknown path", r.raw("GET", "/no/such/path"))
    r.step("method not allowed", r.raw("DELETE", "/connector-plugins"))

    # Delete; PUT creates.
    r.step("delete", lambda: client.delete_connector(name))
    r.step("get, deleted", lambda: client.get_connector(name))
    r.step("list, after delete", client.list_connectors)
    put_config = {**config, "file": f"{path}.put"}
    r.step("put config, creates", lambda: client.update_connector(put_name, put_config))
    r.step("delete, created by put", lambda: client.delete_connector(put_name))
    r.step("list, at the end", client.list_connectors)
    return r.steps


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    url, name, topic, path, records = sys.argv[1:]
    steps = run(url, name, topic, os.path.abspath(path), int(records))
    json.dump({"steps": steps}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
