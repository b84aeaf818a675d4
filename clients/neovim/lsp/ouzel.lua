-- The client configuration `vim.lsp.enable('ouzel')` uses (Neovim 0.11+).
--
-- Options come from `vim.g.ouzel` (see `:help ouzel-options`); anything here can be
-- overridden with `vim.lsp.config('ouzel', { ... })`.
local options = require('ouzel.config').get()

---@type vim.lsp.Config
return {
  -- A function, so that stdio vs TCP and the server's path are decided when the client starts
  -- (and a missing `ouzel` command gets a clear message instead of a silent log line).
  cmd = function(dispatchers, config)
    return require('ouzel.connect').start(dispatchers, config)
  end,
  before_init = function(params, config)
    require('ouzel.connect').before_init(params, config)
  end,
  root_markers = options.root_markers,
  -- Filled from `vim.g.ouzel.settings` when each client starts (see connect.before_init).
  settings = { ouzel = {} },
  capabilities = {
    textDocument = {
      -- Neovim 0.11 does not announce this itself; the plugin renders the suggestions.
      inlineCompletion = { dynamicRegistration = false },
    },
  },
  -- Neovim 0.11 applies edits at once and ignores change annotations: ask per hunk instead
  -- (0.12+ asks by itself, and the handler leaves it to Neovim there).
  handlers = {
    ['workspace/applyEdit'] = function(err, params, ctx)
      return require('ouzel.confirm').handler(err, params, ctx)
    end,
    -- The agent's questions (a protected file, a command to run), asked with vim.ui.select
    -- in turn with the hunk floats.
    ['window/showMessageRequest'] = function(err, params, ctx)
      return require('ouzel.ask').handler(err, params, ctx)
    end,
  },
  -- Streamed requests of a server that exits get no answer: end them (chat shows why).
  on_exit = function(_, _, client_id)
    local jobs = package.loaded['ouzel.jobs']
    if jobs then
      jobs.forget(client_id)
    end
  end,
  -- Commands of the server's code actions, run by the plugin so that it can ask for an
  -- instruction, stream the progress and cancel (`vim.lsp.buf.code_action()` calls these).
  commands = {
    ['ouzel.codeAction.run'] = function(command, ctx)
      require('ouzel.actions').run(command, ctx)
    end,
  },
}
