"""Drives the REAL ursa worker (embedded by runtime/tests/semantics_rest.rs, on a real broker) with a third-party
Kafka Connect client (PyPI `kafka-connect-py`, module `kafka_connect`): create, status, pause, resume, stop,
offsets (plain `requests`: the client has no offsets API), resume from an earlier offset, restart, topics,
validate and delete.

Usage: lifecycle_check.py URL NAME CONFIG_JSON END

CONFIG_JSON is the connector's config; its topic has one partition holding END records before the script runs.
Waits on conditions with deadlines (never a fixed sleep to synchronise). Exits 0 when every answer matches, 1 on
a mismatch, 3 when the client package is missing.
"""

import json
import sys
import time

PIP = 'python3 -m pip install "kafka-connect-py==1.0.0"'

try:
    import requests
    from kafka_connect import KafkaConnect
except ImportError as e:  # pragma: no cover - the Rust test reports this with the pip command
    print(f"kafka-connect-py is not installed ({e}): {PIP}", file=sys.stderr)
    sys.exit(3)

DEADLINE_S = 30


class Mismatch(Exception):
    pass


def expect(what, actual, expected):
    if actual != expected:
        raise Mismatch(f"{what}: expected {expected!r}, got {actual!r}")
    print(f"ok: {what}")


def wait_for(what, check):
    """Polls `check` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + DEADLINE_S
    pause = 0.005
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            print(f"ok: {what}")
            return last
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
    raise Mismatch(f"timed out waiting for {what} (last: {last!r})")


def states(client, name):
    s = client.get_connector_status(name)
    return s["connector"]["state"], [t["state"] for t in s["tasks"]]


def wait_state(client, name, state):
    # A STOPPED connector runs no task (as in Kafka Connect).
    tasks = [] if state == "STOPPED" else [state]
    wait_for(f"{name} {state}", lambda: states(client, name) == (state, tasks))


def offsets(url, name):
    r = requests.get(f"{url}/connectors/{name}/offsets")
    r.raise_for_status()
    return r.json()["offsets"]


def committed(url, name):
    return [o["offset"]["kafka_offset"] for o in offsets(url, name)]


def check(url, name, config, end):
    client = KafkaConnect(url=url)
    expect("server info has a version", isinstance(client.get_cluster_info().get("version"), str), True)
    expect("the test plugin is offered", "test-sink" in [p["class"] for p in client.list_connector_plugins()], True)
    topic = config["topics"]

    created = client.create_connector({"name": name, "config": config})
    expect("created name", created["name"], name)
    expect("created config", created["config"], {**config, "name": name})
    expect("listed", name in client.list_connectors(), True)
    wait_state(client, name, "RUNNING")
    wait_for("every record committed", lambda: committed(url, name) == [end])
    expect("task config", client.list_connector_tasks(name)[0]["id"], {"connector": name, "task": 0})

    expect("pause answers nothing", client.pause_connector(name), None)
    wait_state(client, name, "PAUSED")
    expect("resume answers nothing", client.resume_connector(name), None)
    wait_state(client, name, "RUNNING")

    r = requests.patch(f"{url}/connectors/{name}/offsets", json={"offsets": []})
    expect("offsets cannot be altered empty", r.status_code, 400)
    r = requests.patch(
        f"{url}/connectors/{name}/offsets",
        json={"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 0}}]},
    )
    expect("offsets cannot be altered while running", r.status_code, 400)

    expect("stop answers nothing", client.stop_connector(name), None)
    wait_state(client, name, "STOPPED")
    got = offsets(url, name)
    expect(
        "offsets while stopped",
        got,
        [{"partition": {"kafka_partition": 0, "kafka_topic": topic}, "offset": {"kafka_offset": end}}],
    )
    r = requests.patch(
        f"{url}/connectors/{name}/offsets",
        json={"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 0}}]},
    )
    expect("alter offsets", (r.status_code, "altered" in r.json()["message"]), (200, True))
    expect("altered offsets", committed(url, name), [0])

    expect("resume from STOPPED answers nothing", client.resume_connector(name), None)
    wait_state(client, name, "RUNNING")
    wait_for("every record delivered again and committed", lambda: committed(url, name) == [end])

    # The client sends includeTasks=False&onlyFailed=False: Connect's legacy 204 without a body.
    expect("legacy restart answers nothing", client.restart_connector(name), None)
    wait_state(client, name, "RUNNING")
    restarted = client.restart_connector(name, include_tasks=True, only_failed=True)
    expect("restart with tasks answers the status", restarted["name"], name)
    wait_state(client, name, "RUNNING")
    expect("topics", client.list_connector_topics(name), {name: {"topics": [topic]}})

    bad = {**config, "name": name, "errors.tolerance": "most", "topics.regx": "x"}
    validation = client.validate_connector_config("test-sink", bad)
    expect("validation error count", validation["error_count"], 2)
    errors = {c["value"]["name"]: c["value"]["errors"] for c in validation["configs"] if c["value"]["errors"]}
    expect("validation keys", sorted(errors), ["errors.tolerance", "topics.regx"])
    expect("did you mean", "did you mean `topics.regex`" in errors["topics.regx"][0], True)

    expect("delete answers nothing", client.delete_connector(name), None)
    expect("gone from the list", name in client.list_connectors(), False)
    try:
        client.get_connector(name)
    except requests.exceptions.HTTPError as e:
        expect("deleted connector status", e.response.status_code, 404)
        expect("error body code", e.response.json()["error_code"], 404)
    else:
        raise Mismatch("a deleted connector was still found")


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    url, name, config, end = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
    try:
        check(url, name, config, end)
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
