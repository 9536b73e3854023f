"""Drives ursa's Kafka Connect REST API with a third-party Connect client (PyPI `kafka-connect-py`, module
`kafka_connect`): lists, creates, reads config/status/tasks, pauses, resumes, restarts, reads topics, updates
the config and deletes a connector.

Usage: connect_client_check.py URL [TOKEN]

Expects an empty worker offering the `http-sink` plugin (the fake in runtime/tests/rest_api.rs). With TOKEN,
every request carries `Authorization: Bearer TOKEN`. Exits 0 when every answer matches, 1 on a mismatch, 3 when
the client package is missing.
"""

import sys

PIP = 'python3 -m pip install "kafka-connect-py==1.0.0"'

try:
    import requests
    from kafka_connect import KafkaConnect
except ImportError as e:  # pragma: no cover - the Rust test reports this with the pip command
    print(f"kafka-connect-py is not installed ({e}): {PIP}", file=sys.stderr)
    sys.exit(3)


class BearerAuth(requests.auth.AuthBase):
    """The client only knows basic auth; requests takes any AuthBase in its place."""

    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class Mismatch(Exception):
    pass


def expect(what, actual, expected):
    if actual != expected:
        raise Mismatch(f"{what}: expected {expected!r}, got {actual!r}")
    print(f"ok: {what}")


def state_of(client, name):
    return client.get_connector_status(name)["connector"]["state"]


def check(url, token):
    client = KafkaConnect(url=url)
    if token:
        client.auth = BearerAuth(token)

    info = client.get_cluster_info()
    expect("server info has a version", isinstance(info.get("version"), str), True)
    expect("no connectors at first", client.list_connectors(), [])
    plugins = client.list_connector_plugins()
    expect("plugins", [p["class"] for p in plugins], ["http-sink"])

    name = "orders-sink"
    config = {
        "connector.class": "http-sink",
        "tasks.max": "2",
        "topics": "orders,refunds",
        "http.url": "http://localhost:9999/ingest",
    }
    created = client.create_connector({"name": name, "config": config})
    expect("created name", created["name"], name)
    expect("created config", created["config"], {**config, "name": name})
    expect("created type", created["type"], "sink")
    expect("listed", client.list_connectors(), [name])
    expect("listed by pattern", client.list_connectors(pattern="orders-.*"), [name])

    expanded = client.list_connectors(expand="status")
    expect("expand=status state", expanded[name]["status"]["connector"]["state"], "RUNNING")
    expanded = client.list_connectors(expand="info")
    expect("expand=info config", expanded[name]["info"]["config"]["topics"], "orders,refunds")
    expect("filtered by state", client.list_connectors(state="running"), [name])

    got = client.get_connector(name)
    expect("get connector tasks", [t["task"] for t in got["tasks"]], [0, 1])
    expect("get config", client.get_connector_config(name), {**config, "name": name})
    status = client.get_connector_status(name)
    expect("status state", status["connector"]["state"], "RUNNING")
    expect("status tasks", [(t["id"], t["state"]) for t in status["tasks"]], [(0, "RUNNING"), (1, "RUNNING")])
    tasks = client.list_connector_tasks(name)
    expect("tasks", [t["id"] for t in tasks], [{"connector": name, "task": 0}, {"connector": name, "task": 1}])
    expect("task status", client.get_connector_task_status(name, 1)["state"], "RUNNING")

    expect("pause answers nothing", client.pause_connector(name), None)
    expect("paused", state_of(client, name), "PAUSED")
    expect("resume answers nothing", client.resume_connector(name), None)
    expect("resumed", state_of(client, name), "RUNNING")

    # The client sends includeTasks=False&onlyFailed=False (Python's spelling): Connect's legacy 204.
    expect("legacy restart answers nothing", client.restart_connector(name), None)
    restarted = client.restart_connector(name, include_tasks=True)
    expect("restart with tasks answers the status", restarted["name"], name)
    expect("restarting", restarted["connector"]["state"], "RESTARTING")
    expect("running after restart", state_of(client, name), "RUNNING")

    topics = client.list_connector_topics(name)
    expect("topics", sorted(topics[name]["topics"]), ["orders", "refunds"])

    validation = client.validate_connector_config("http-sink", config)
    expect("validation errors", validation["error_count"], 0)

    updated = client.update_connector(name, {**config, "tasks.max": "1"})
    expect("updated config", updated["config"]["tasks.max"], "1")
    expect("config after update", client.get_connector_config(name)["tasks.max"], "1")
    expect("tasks after update", len(client.list_connector_tasks(name)), 1)

    expect("stop answers nothing", client.stop_connector(name), None)
    expect("stopped", state_of(client, name), "STOPPED")

    expect("delete answers nothing", client.delete_connector(name), None)
    expect("gone from the list", client.list_connectors(), [])
    try:
        client.get_connector(name)
    except requests.exceptions.HTTPError as e:
        expect("deleted connector status", e.response.status_code, 404)
        body = e.response.json()
        expect("error body code", body["error_code"], 404)
        expect("error body has a message", isinstance(body.get("message"), str), True)
    else:
        raise Mismatch("a deleted connector was still found")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    url = sys.argv[1]
    token = sys.argv[2] if len(sys.argv) == 3 else None
    try:
        check(url, token)
    except Mismatch as e:
        print(f"MISMATCH: {e}", file=sys.stderr)
        return 1
    except requests.exceptions.HTTPError as e:
        print(f"MISMATCH: unexpected HTTP error {e} body={e.response.text!r}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
