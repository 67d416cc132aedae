"""Importing the Faust app (what `faust -A streamer.app` does first) opens no connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap


def test_importing_the_app_connects_to_nothing() -> None:
    # Listeners that record any connection: if the import dialled either, we would see it.
    with socket.socket() as kafka, socket.socket() as redis:
        for listener in (kafka, redis):
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
        inherited = {
            k: v for k, v in os.environ.items() if k not in ("STREAMER_APP_ID", "TOPIC_PREFIX")
        }
        env = {
            **inherited,
            "KAFKA_BROKER": f"kafka://127.0.0.1:{kafka.getsockname()[1]}",
            "REDIS_URL": f"redis://127.0.0.1:{redis.getsockname()[1]}/0",
        }
        script = textwrap.dedent(
            """
            import streamer.app
            from streamer.app import app
            # Agents, tables and routes are registered once their modules are discovered.
            app.discover()
            assert {"enrich", "count-page-views", "predict"} <= {
                agent.name.rsplit(".", 1)[-1] for agent in app.agents.values()
            }, sorted(app.agents)
            print(app.conf.id)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "churn-streamer"
        for listener in (kafka, redis):
            try:
                listener.accept()
            except BlockingIOError:
                continue
            raise AssertionError("importing the app opened a connection")
