"""`ouzel context FILE:LINE:COL --json` and the server's completion path build one prompt.

The command line runs the server's own pipeline in a headless session (server/app.py);
here its prompt is compared byte for byte with what the server's completion path would
send (`ouzel/context`, which is `CompletionEngine.prompt_for`) at 20 cursors of a fixture
workspace, with the real embedded model and its tokenizer, Jedi and the workspace index.

A server remembers what earlier requests found (Jedi's answers at earlier cursors, recent
code); a one-shot command cannot. So recent code is left out of the sources on both
sides, the document is opened afresh for each cursor (closing it drops its Jedi
answers), and the server is asked until Jedi's answers have settled (the same prompt
twice), as the command waits for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rpc import RawClient, StdioServer, server_env
from waiting import wait_for

pytestmark = pytest.mark.e2e

PROJECT = {
    "shapes/__init__.py": "from .geometry import Circle, Rectangle, area_of\n",
    "shapes/geometry.py": (
        "import math\n"
        "from dataclasses import dataclass\n"
        "\n\n"
        "@dataclass\n"
        "class Circle:\n"
        "    radius: float\n"
        "\n"
        "    def area(self) -> float:\n"
        "        return math.pi * self.radius**2\n"
        "\n\n"
        "@dataclass\n"
        "class Rectangle:\n"
        "    width: float\n"
        "    height: float\n"
        "\n"
        "    def area(self) -> float:\n"
        "        return self.width * self.height\n"
        "\n\n"
        "def area_of(shapes: list[Circle | Rectangle]) -> float:\n"
        '    """The total area of `shapes`."""\n'
        "    return sum(shape.area() for shape in shapes)\n"
    ),
    "shapes/report.py": (
        "from shapes.geometry import area_of\n"
        "\n\n"
        "def describe(total: float) -> str:\n"
        '    return f"total area {total:.2f}"\n'
    ),
    "app.py": (
        "import json\n"
        "from pathlib import Path\n"
        "\n"
        "from shapes import Circle, Rectangle, area_of\n"
        "from shapes.report import describe\n"
        "\n\n"
        "def load(path: Path) -> list[Circle | Rectangle]:\n"
        "    data = json.loads(path.read_text())\n"
        "    shapes = []\n"
        "    for item in data:\n"
        "        if item['kind'] == 'circle':\n"
        "            shapes.append(Circle(item['radius']))\n"
        "        else:\n"
        "            shapes.append(Rectangle(item['width'], item['height']))\n"
        "    return shapes\n"
        "\n\n"
        "def main() -> None:\n"
        "    shapes = load(Path('shapes.json'))\n"
        "    total = area_of(shapes)\n"
        "    print(describe(total))\n"
        "    \n"
    ),
}
# Completion-worthy cursors in app.py (0-based line, code point column): line ends and
# indented empty lines, where ouzel suggests.
LINES = [0, 1, 3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 18, 19, 20, 21]
USER_CONFIG = '[context]\nsources = ["definitions", "bm25"]\n'


def _line_end(text: str, line: int) -> int:
    return len(text.splitlines()[line])


def _positions() -> list[tuple[int, int]]:
    text = PROJECT["app.py"]
    ends = [(line, _line_end(text, line)) for line in LINES]
    mid = [(8, len("    data = json.")), (19, len("    shapes = load(")), (20, len("    total = "))]
    return ends + mid


def _jedi_idle(client: RawClient) -> None:
    def idle() -> bool:
        return client.request("ouzel/status")["result"]["context"]["jediJobs"] == 0

    wait_for(idle, 60, "the server's Jedi jobs to finish")


def _server_prompt(client: RawClient, uri: str, line: int, character: int) -> str | None:
    """The server's prompt once the model is loaded and Jedi's answers settled: asked
    again after Jedi finished what the last request started, until it stays the same."""
    params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
    seen: list[str | None] = []

    def settled() -> bool:
        result = client.request("ouzel/context", params, timeout=120)["result"]
        if result["prompt"] is None and "loading" in result["note"]:
            return False
        seen.append(result["prompt"])
        if len(seen) >= 2 and seen[-1] == seen[-2]:
            return True
        _jedi_idle(client)
        return False

    wait_for(settled, 180, f"the server's prompt at {line}:{character} to settle", every=0.2)
    return seen[-1]


def _wait_for_index(client: RawClient, files: int) -> None:
    def indexed() -> bool:
        index = client.request("ouzel/status")["result"]["index"]
        return bool(index["phase"] == "idle" and index["filesIndexed"] >= files)

    wait_for(indexed, 120, f"{files} indexed files")


def _cli_prompts(home: Path, positions: list[tuple[int, int]]) -> list[str | None]:
    """`ouzel context app.py:L:C … --json`: one run, each cursor in a freshly opened file."""
    locations = [f"app.py:{line + 1}:{character + 1}" for line, character in positions]
    done = subprocess.run(
        [sys.executable, "-m", "ouzel.server.cli", "context", *locations, "--json"],
        capture_output=True,
        text=True,
        env=server_env(home),
        cwd=home / "workspace",
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return [result["prompt"] for result in json.loads(done.stdout)]


def test_the_command_line_and_the_server_send_the_same_prompt(tmp_path: Path) -> None:
    root = tmp_path / "workspace"
    for name, text in PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / ".git").mkdir()
    (tmp_path / "config" / "ouzel").mkdir(parents=True)
    (tmp_path / "config" / "ouzel" / "config.toml").write_text(USER_CONFIG)
    positions = _positions()
    assert len(positions) == 20
    stdio = StdioServer(tmp_path)
    try:
        client = stdio.client
        client.initialize(root=root)
        uri = (root / "app.py").as_uri()
        document = {"uri": uri, "languageId": "python", "version": 1, "text": PROJECT["app.py"]}
        _wait_for_index(client, len(PROJECT))
        server: dict[tuple[int, int], str | None] = {}
        for at in positions:
            client.notify("textDocument/didOpen", {"textDocument": document})
            server[at] = _server_prompt(client, uri, *at)
            client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    finally:
        stdio.close()
    made = [at for at, prompt in server.items() if prompt is not None]
    assert len(made) >= 15, f"too few cursors got a prompt: {made}"
    assert any("def area_of(" in (server[at] or "") for at in made), "no repository context"
    for at, command_line in zip(positions, _cli_prompts(tmp_path, positions), strict=True):
        if command_line != server[at]:
            (tmp_path / "differing-cli-prompt.txt").write_text(str(command_line))
            (tmp_path / "differing-server-prompt.txt").write_text(str(server[at]))
        assert command_line == server[at], f"prompts differ at {at}"
