"""`omi-bridge serve` as a real process: refuses to start without Omi, serves, stops gracefully on SIGTERM."""

from __future__ import annotations

import subprocess
import sys

import httpx

from bot.sandbox import ALL_CAPABILITIES, Sandbox
from tests.processes import BackgroundProcess, clean_env, free_port


def test_serve_refuses_to_start_without_omi_settings(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "OMI_APP_ID" in line
    assert "Traceback" not in done.stderr


async def test_serve_answers_health_and_pages_then_stops_on_sigterm(tmp_path):
    sandbox = Sandbox()
    base_url = await sandbox.start("127.0.0.1", 0)
    app = sandbox.create_app(capabilities=ALL_CAPABILITIES)
    port = free_port()
    env = clean_env(
        OMI_API_BASE_URL=base_url,
        OMI_APP_ID=app.app_id,
        OMI_API_KEY=app.api_key,
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}",
    )
    serve = BackgroundProcess("serve", cwd=tmp_path, env=env)
    try:
        url = serve.wait_for(r"serving on (http://\S+)").group(1)
        async with httpx.AsyncClient(base_url=url) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert health.json()["components"]["telegram"] == "disabled"
            setup = await client.get("/omi/setup", params={"uid": "someone"})
            assert setup.status_code == 200
            assert (await client.get("/omi/setup-completed", params={"uid": "someone"})).json() == {
                "is_setup_completed": False
            }
        assert serve.stop() == 0
    finally:
        serve.kill()
        await sandbox.stop()
        sandbox.close()
    output = "\n".join(serve.rest())
    assert app.api_key not in output
    assert "Traceback" not in output
