"""The context engine without an editor: one file, one cursor (`ouzel context`).

It reads the workspace's settings and index (read-only) as the server would and builds the
same prompt with the same functions. There is no editor session, so no recently edited
code; Jedi's analysis is waited for instead of being done in the background.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ouzel.inference.templates import ContextSnippet, line_comment
from ouzel.server.convert import line_starts
from ouzel.server.features.context.engine import ContextEngine, EngineOptions, Retrieval
from ouzel.server.features.context.files import FileTexts, SecretGuard
from ouzel.server.features.context.model import ContextRequest
from ouzel.server.features.context.pack import Packer
from ouzel.server.features.context.python_defs import JediService, default_sys_paths
from ouzel.server.features.context.recent import RecentBuffer
from ouzel.server.features.context.service import (
    ContextReport,
    inline_profile,
    model_format,
    template_renderer,
)
from ouzel.server.settings import Settings

ROOT_MARKERS = (".git", ".hg", ".ouzel", "pyproject.toml", "setup.py", "package.json", "go.mod")
ANALYSIS_WAIT_S = 60.0


def find_root(path: Path) -> Path:
    """The nearest folder above `path` that looks like a workspace (else its folder)."""
    for folder in path.parents:
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return path.parent


@dataclass
class Standalone:
    root: Path
    settings: Settings
    index_dir: Path | None = None

    def report(self, path: Path, text: str, offset: int) -> tuple[ContextReport, list[str]]:
        """The context and prompt at `offset` of `text` (the file at `path`), and notes."""
        notes = ["no editor session here, so no recently edited code"]
        form = model_format(self.settings)
        language = "python" if path.suffix in (".py", ".pyi") else path.suffix.lstrip(".")
        comment = line_comment(language, path.name)
        packer = Packer(form.counter, template_renderer(form.template, comment))
        guard = SecretGuard([self.root], self.settings.index.secret_globs)
        index, retrieval, note = self._open_index()
        if note:
            notes.append(note)
        jedi = JediService()
        try:
            engine = ContextEngine(
                jedi,
                RecentBuffer(),
                packer,
                guard,
                FileTexts(self.settings.index.max_file_bytes),
                retrieval_for=lambda root: retrieval,
                sys_paths=default_sys_paths(),
            )
            request = ContextRequest(path.as_uri(), path, language, 0, text, offset, self.root)
            context = self.settings.context
            options = EngineOptions(
                budget=context.budget_tokens if context.enabled else 0,
                jedi_cap_s=context.jedi_timeout_ms / 1000,
                strategies=tuple(context.sources),
            )
            started = time.perf_counter()
            if language == "python" and not guard.is_secret(path):
                engine.prepare(request.uri, path, text, 0, self.root)
                jedi.analyze(request.uri, path, text, 0, self.root).result(ANALYSIS_WAIT_S)
                engine.gather(request, options)  # starts Jedi's look-ups at the cursor
                jedi.idle(ANALYSIS_WAIT_S)  # as the next keystroke in an editor would see
            result = engine.gather(request, options, exact_parts=True)
            result.timings_ms["with analysis"] = round((time.perf_counter() - started) * 1000)
        finally:
            jedi.close()
            if index is not None:
                index.close()
        snippets = [ContextSnippet(p.display_path, p.text, p.source) for p in result.parts]
        plan = self._plan(path, text, offset, language, form, snippets)
        if plan is None:
            report = ContextReport(
                None, form.template.family, result.parts, result, note="no completion here"
            )
            return report, notes
        kept = set(plan.snippets)
        parts = [
            p for p in result.parts if ContextSnippet(p.display_path, p.text, p.source) in kept
        ]
        report = ContextReport(
            plan.request.prompt, plan.template, parts, result, plan.window, "", result.timings_ms
        )
        return report, notes

    def _plan(
        self,
        path: Path,
        text: str,
        offset: int,
        language: str,
        form: Any,
        snippets: list[ContextSnippet],
    ) -> Any:
        from ouzel.server.features.completion_prompt import build_prompt

        completion = self.settings.completion
        profile = inline_profile(self.settings)
        if profile is not None:  # leave room for the answer, as the server does
            room = max(64, profile.context_length - completion.max_tokens - 16)
            completion = completion.model_copy(
                update={"prompt_tokens": min(completion.prompt_tokens, room)}
            )
        context = self.settings.context
        display = (
            path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else path.name
        )
        return build_prompt(
            text,
            line_starts(text),
            offset,
            path=display,
            language_id=language,
            template=form.template,
            count_tokens=form.counter.count,
            settings=completion,
            snippets=snippets,
            snippet_budget=context.budget_tokens if context.enabled else 0,
        )

    def _open_index(self) -> tuple[Any, Retrieval | None, str]:
        from ouzel.indexer.config import index_dir_for
        from ouzel.indexer.index import WorkspaceIndex
        from ouzel.server.features.context.index_access import IndexRetrieval
        from ouzel.server.features.indexing import index_config

        config = index_config(self.settings.index)
        config.watch = False
        if self.index_dir is not None:
            config.index_dir = self.index_dir
        if not (index_dir_for(self.root, config) / "meta.json").exists():
            return None, None, f"no index of {self.root}: run `ouzel index` for search results"
        index = WorkspaceIndex(self.root, config, writer=False)
        if index.problem:
            index.close()
            return None, None, f"the index of {self.root} cannot be read ({index.problem})"
        return index, IndexRetrieval(index), ""
