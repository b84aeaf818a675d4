"""How well does the agent edit code? Small edit tasks with tests, through the real agent loop.

Each task makes a fixture repository in a temporary folder, asks the agent for one change
(a rename across files, a fixed bug, a new parameter, …), accepts every proposed hunk (a
protected file is declined), then runs the task's test. Reported per task and in total:

  success         the test passes after the turn
  first try       propose_edit/create_file calls applied with no failed match before
  after feedback  calls applied after a failed match on that file (the "did you mean" round)
  refused         calls refused (no match, ambiguous, elision, stale, sandbox)

Runs against any OpenAI-compatible server, unchanged against vLLM:

    python benchmarks/agent_edits.py --endpoint http://gpu:8000/v1 --model Qwen/Qwen2.5-Coder-32B-Instruct \
        [--api-key-env VLLM_KEY] [--tasks 22] [--max-steps 12]

For llama-cpp-python's server with `--chat_format chatml-function-calling` (whose template
drops `tool` messages and which cannot stream tool calls) add
`--tool-results user --unstreamed-tools`. Tests run under bubblewrap when it is
installed (they execute the model's code).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ouzel.inference.openai_compat import Endpoint, OpenAICompatBackend
from ouzel.inference.types import BackendError, CancelToken
from ouzel.server.agent import commands
from ouzel.server.agent.checkpoint import Checkpoint
from ouzel.server.agent.confirm import CommandProposal, EditDecision, EditProposal
from ouzel.server.agent.loop import AgentLoop
from ouzel.server.agent.sandbox import Sandbox
from ouzel.server.agent.tools import AgentContext, EditStats
from ouzel.server.settings import DEFAULT_SECRET_GLOBS, AgentSettings

EDIT_TOOLS = ("read_file", "list_dir", "grep", "propose_edit", "create_file")


@dataclass(frozen=True)
class Task:
    name: str
    files: dict[str, str]
    request: str
    test: str  # Python run in the repository folder; an exception means failure


def _d(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


TASKS = [
    Task(
        "rename-two-files",
        {
            "util.py": "def add(a, b):\n    return a + b\n",
            "main.py": "from util import add\n\nprint(add(1, 2))\n",
        },
        "Rename the function `add` to `plus` in util.py and update its use in main.py.",
        "from util import plus; assert plus(2, 3) == 5\n"
        "src = open('main.py').read(); assert 'plus(1, 2)' in src and 'add' not in src",
    ),
    Task(
        "change-constant",
        {"config.py": "TIMEOUT = 30\nRETRIES = 3\n"},
        "In config.py set TIMEOUT to 60.",
        "import config; assert config.TIMEOUT == 60 and config.RETRIES == 3",
    ),
    Task(
        "fix-off-by-one",
        {"ranges.py": "def first_n(items, n):\n    return items[: n - 1]\n"},
        "first_n in ranges.py returns one item too few. Fix it.",
        "from ranges import first_n; assert first_n([1, 2, 3, 4], 2) == [1, 2]",
    ),
    Task(
        "default-parameter",
        {"greet.py": "def greet(name):\n    return 'Hello, ' + name\n"},
        "In greet.py give the `name` parameter of greet the default value 'world'.",
        "from greet import greet; assert greet() == 'Hello, world' and greet('a') == 'Hello, a'",
    ),
    Task(
        "fix-comparison",
        {"checks.py": "def is_adult(age):\n    return age > 18\n"},
        "is_adult in checks.py should be True for age 18 too. Fix it.",
        "from checks import is_adult; assert is_adult(18) and not is_adult(17)",
    ),
    Task(
        "rename-class",
        {
            "shapes.py": "class Sqare:\n    def __init__(self, side):\n        self.side = side\n",
            "use.py": "from shapes import Sqare\n\nS = Sqare(2)\n",
        },
        "Fix the typo: rename class Sqare to Square in shapes.py and use.py.",
        "import use, shapes; assert use.S.side == 2 and hasattr(shapes, 'Square')\n"
        "assert 'Sqare' not in open('use.py').read() + open('shapes.py').read()",
    ),
    Task(
        "new-function",
        {"mathx.py": "def double(x):\n    return 2 * x\n"},
        "Add a function `triple(x)` returning 3 * x to mathx.py.",
        "from mathx import triple, double; assert triple(3) == 9 and double(2) == 4",
    ),
    Task(
        "string-change",
        {"messages.py": "WELCOME = 'Welcome!'\nBYE = 'Bye!'\n"},
        "Change the BYE message in messages.py to 'Goodbye!'.",
        "import messages; assert messages.BYE == 'Goodbye!' and messages.WELCOME == 'Welcome!'",
    ),
    Task(
        "fix-wrong-operator",
        {"area.py": "def rectangle_area(w, h):\n    return w + h\n"},
        "rectangle_area in area.py adds instead of multiplying. Fix it.",
        "from area import rectangle_area; assert rectangle_area(3, 4) == 12",
    ),
    Task(
        "rename-variable",
        {
            "totals.py": _d("""
            def total(prices):
                s = 0
                for p in prices:
                    s += p
                return s
            """)
        },
        "In totals.py rename the variable `s` to `running_total` inside total().",
        "from totals import total; assert total([1, 2, 3]) == 6\n"
        "src = open('totals.py').read(); assert 'running_total' in src and ' s ' not in src",
    ),
    Task(
        "create-file",
        {"README.md": "# Demo\n"},
        "Create a file version.py that defines VERSION = '1.0.0'.",
        "import version; assert version.VERSION == '1.0.0'",
    ),
    Task(
        "add-import-use",
        {"paths.py": "def join(a, b):\n    return a + '/' + b\n"},
        "In paths.py make join use os.path.join (add the import).",
        "import paths, os; assert paths.join('a', 'b') == os.path.join('a', 'b')\n"
        "assert 'os.path.join' in open('paths.py').read()",
    ),
    Task(
        "rename-method",
        {
            "stack.py": _d("""
            class Stack:
                def __init__(self):
                    self.items = []

                def add(self, item):
                    self.items.append(item)
            """),
            "app.py": "from stack import Stack\n\ns = Stack()\ns.add(1)\n",
        },
        "Rename the method Stack.add to push in stack.py and its call in app.py.",
        "import app; assert app.s.items == [1]\nfrom stack import Stack; assert hasattr(Stack, 'push')\n"
        "assert '.add(' not in open('app.py').read()",
    ),
    Task(
        "fix-return",
        {
            "maxi.py": _d("""
            def biggest(values):
                best = values[0]
                for v in values:
                    if v > best:
                        best = v
                return values[0]
            """)
        },
        "biggest in maxi.py returns the wrong value. Fix it.",
        "from maxi import biggest; assert biggest([3, 9, 2]) == 9",
    ),
    Task(
        "add-docstring",
        {"tools.py": "def clamp(x, low, high):\n    return max(low, min(x, high))\n"},
        'Add the docstring "Limit x to the range [low, high]." to clamp in tools.py.',
        "import tools; assert tools.clamp.__doc__.strip() == 'Limit x to the range [low, high].'\n"
        "assert tools.clamp(5, 0, 3) == 3",
    ),
    Task(
        "rename-constant-two-files",
        {
            "limits.py": "MAX_SIZE = 10\n",
            "check.py": "from limits import MAX_SIZE\n\n\ndef fits(n):\n    return n <= MAX_SIZE\n",
        },
        "Rename the constant MAX_SIZE to SIZE_LIMIT in limits.py and check.py.",
        "import check, limits; assert limits.SIZE_LIMIT == 10 and check.fits(10)\n"
        "assert 'MAX_SIZE' not in open('check.py').read()",
    ),
    Task(
        "fix-empty-case",
        {"avg.py": "def average(xs):\n    return sum(xs) / len(xs)\n"},
        "average in avg.py crashes on an empty list; make it return 0 for an empty list.",
        "from avg import average; assert average([]) == 0 and average([2, 4]) == 3",
    ),
    Task(
        "change-default",
        {"fetch.py": "def fetch(url, timeout=5):\n    return (url, timeout)\n"},
        "Change the default timeout of fetch in fetch.py to 10.",
        "from fetch import fetch; assert fetch('u') == ('u', 10)",
    ),
    Task(
        "add-parameter",
        {"fmt.py": "def money(amount):\n    return f'{amount:.2f} EUR'\n"},
        "Add a parameter `currency` with default 'EUR' to money in fmt.py and use it "
        "instead of the fixed 'EUR'.",
        "from fmt import money; assert money(2) == '2.00 EUR' and money(1, 'USD') == '1.00 USD'",
    ),
    Task(
        "fix-string-case",
        {"names.py": "def shout(name):\n    return name.lower() + '!'\n"},
        "shout in names.py should return the name in upper case. Fix it.",
        "from names import shout; assert shout('ab') == 'AB!'",
    ),
    Task(
        "rename-file-function-three-uses",
        {
            "calc.py": "def sq(x):\n    return x * x\n\n\ndef cube(x):\n    return sq(x) * x\n",
            "run.py": "from calc import sq\n\nRESULT = sq(3)\n",
        },
        "Rename the function sq to square everywhere (calc.py and run.py).",
        "import run, calc; assert run.RESULT == 9 and calc.cube(2) == 8\n"
        "assert 'sq(' not in open('calc.py').read().replace('square(', '')",
    ),
    Task(
        "protected-manifest",
        {
            "pyproject.toml": "[project]\nname = 'demo'\nversion = '0.1.0'\n",
            "demo.py": "NAME = 'demo'\n",
        },
        "In demo.py set NAME to 'demo2'. Do not touch other files.",
        "import demo; assert demo.NAME == 'demo2'\n"
        "assert open('pyproject.toml').read() == \"[project]\\nname = 'demo'\\nversion = '0.1.0'\\n\"",
    ),
]


class AcceptAll:
    """The benchmark's user: accepts every hunk, declines protected files and commands."""

    def __init__(self) -> None:
        self.protected_asked = 0

    async def confirm_edit(self, proposal: EditProposal) -> EditDecision:
        return EditDecision.all(proposal, True)

    async def confirm_protected(self, path: str, risk: str) -> bool:
        self.protected_asked += 1
        return False

    async def confirm_command(self, proposal: CommandProposal) -> bool:
        return False

    async def confirm_destructive(self, proposal: CommandProposal) -> bool:
        return False


@dataclass
class Outcome:
    task: str
    success: bool
    status: str
    steps: int
    seconds: float
    stats: EditStats
    detail: str = ""
    error: str = ""


def run_test(folder: Path, test: str) -> tuple[bool, str]:
    argv = [sys.executable, "-c", test]
    bwrap = commands.bwrap_path()
    if bwrap:
        argv = commands.sandbox_argv(argv, str(folder), [str(folder)], bwrap)
    try:
        done = subprocess.run(
            argv, cwd=folder, capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return False, "test timed out"
    return done.returncode == 0, (done.stderr.strip().splitlines() or [""])[-1][:120]


async def run_task(task: Task, args: argparse.Namespace, backend: OpenAICompatBackend) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="ouzel-agent-bench-") as temp:
        folder = Path(temp)
        for name, text in task.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        settings = AgentSettings(max_steps=args.max_steps, max_wall_s=args.turn_timeout)
        ctx = AgentContext(
            sandbox=Sandbox([folder], DEFAULT_SECRET_GLOBS),
            confirmer=AcceptAll(),
            checkpoint=Checkpoint(task.name),
            settings=settings,
            cancel=CancelToken(),
        )
        loop = AgentLoop(
            backend,
            ctx,
            max_answer_tokens=args.max_answer_tokens,
            only_tools=EDIT_TOOLS,
            tool_results_role=args.tool_results,
        )
        started = time.perf_counter()
        result = await loop.run(task.request)
        seconds = time.perf_counter() - started
        success, detail = run_test(folder, task.test)
        return Outcome(
            task.name,
            success,
            result.status,
            result.steps,
            seconds,
            result.stats,
            detail if not success else "",
            result.error,
        )


def print_table(outcomes: list[Outcome], model: str) -> None:
    print(f"\nagent edit benchmark: {len(outcomes)} tasks, model {model}\n")
    header = (
        f"{'task':34} {'ok':>3} {'status':>9} {'steps':>5} {'1st':>4} {'fb':>3} {'ref':>4} {'s':>7}"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        print(
            f"{o.task:34} {'yes' if o.success else 'no':>3} {o.status:>9} {o.steps:>5} "
            f"{o.stats.applied_first_try:>4} {o.stats.applied_after_feedback:>3} "
            f"{o.stats.refused:>4} {o.seconds:>7.1f}" + (f"  {o.detail}" if o.detail else "")
        )
    total = len(outcomes) or 1
    first = sum(o.stats.applied_first_try for o in outcomes)
    feedback = sum(o.stats.applied_after_feedback for o in outcomes)
    refused = sum(o.stats.refused for o in outcomes)
    success = sum(o.success for o in outcomes)
    print("-" * len(header))
    print(f"task success:                 {success}/{len(outcomes)} ({100 * success / total:.0f}%)")
    print(f"edits applied on first try:   {first}")
    print(f"edits after the feedback round: {feedback}")
    print(f"edit calls refused:           {refused}")
    print(f"wall time:                    {sum(o.seconds for o in outcomes):.0f} s")


async def served_model(endpoint: Endpoint, wait_s: float = 300.0) -> str:
    """The first model the server lists; a busy server (still answering an earlier request)
    gets a few minutes."""
    deadline = time.monotonic() + wait_s
    while True:
        backend = OpenAICompatBackend("probe", endpoint)
        try:
            return await backend.model_id()
        except BackendError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(5)
        finally:
            await backend.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="OpenAI-compatible base URL (…/v1)")
    parser.add_argument("--model", default=None, help="model id (default: the first served)")
    parser.add_argument("--api-key-env", default=None, help="environment variable with the key")
    parser.add_argument("--tasks", type=int, default=len(TASKS), help="run the first N tasks")
    parser.add_argument("--only", default="", help="comma-separated task names")
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--max-answer-tokens", type=int, default=512)
    parser.add_argument("--turn-timeout", type=float, default=900.0, help="seconds per task")
    parser.add_argument("--read-timeout", type=float, default=600.0)
    parser.add_argument("--tool-results", choices=("tool", "user"), default="tool")
    parser.add_argument(
        "--unstreamed-tools",
        action="store_true",
        help="ask unstreamed when tools are offered (llama-cpp-python chatml-function-calling)",
    )
    args = parser.parse_args()
    endpoint = Endpoint(
        base_url=args.endpoint,
        model=args.model,
        api_key_env=args.api_key_env,
        read_timeout_s=args.read_timeout,
        stream_tool_calls=not args.unstreamed_tools,
    )
    if endpoint.model is None:
        endpoint = replace(endpoint, model=await served_model(endpoint))
    backend = OpenAICompatBackend("bench", endpoint)
    chosen = [t for t in TASKS if t.name in args.only.split(",")] if args.only else TASKS
    outcomes = []
    try:
        for task in chosen[: args.tasks]:
            outcome = await run_task(task, args, backend)
            print(
                f"{task.name}: {'ok' if outcome.success else 'FAIL'} ({outcome.status}, "
                f"{outcome.seconds:.0f} s) {outcome.error or outcome.detail}",
                flush=True,
            )
            outcomes.append(outcome)
        print_table(outcomes, endpoint.model or "?")
    finally:
        await backend.aclose()


if __name__ == "__main__":
    asyncio.run(main())
