--- ouzel for Neovim: the public API. See `:help ouzel`.
---
--- Nothing here needs calling: `vim.lsp.enable('ouzel')` starts the server, and the plugin
--- attaches ghost text, keys and status to every buffer an ouzel client attaches to.

local M = {}

local NAME = 'ouzel'

--- The ghost-text engine: Neovim's own inline completion on 0.12+, the plugin's on 0.11.
--- @return table
local function engine()
  if vim.lsp.inline_completion and require('ouzel.config').get().native then
    return require('ouzel.native')
  end
  return require('ouzel.inline')
end
M.engine = engine

--- The ouzel client attached to a buffer.
--- @param bufnr? integer
--- @return vim.lsp.Client?
function M.client(bufnr)
  return vim.lsp.get_clients({ name = NAME, bufnr = bufnr or vim.api.nvim_get_current_buf() })[1]
end

--- Any running ouzel client (for commands run outside an attached buffer).
--- @return vim.lsp.Client?
function M.any_client()
  return M.client() or vim.lsp.get_clients({ name = NAME })[1]
end

--- Called from the LspAttach autocmd of plugin/ouzel.lua.
--- @param client vim.lsp.Client
--- @param bufnr integer
function M.attach(client, bufnr)
  require('ouzel.keymaps').set_defaults()
  engine().attach(client, bufnr)
  require('ouzel.rest').attach(client, bufnr)
end

--- @param bufnr integer
function M.detach(bufnr)
  engine().detach(bufnr)
end

--- Accept the whole suggestion. Call it from a `<Cmd>` mapping or `<Plug>(ouzel-accept)`.
--- @return boolean accepted
function M.accept()
  return engine().accept()
end

--- Accept the next word of the suggestion.
--- @return boolean accepted
function M.accept_word()
  return engine().accept_word()
end

--- Accept the rest of the current line of the suggestion.
--- @return boolean accepted
function M.accept_line()
  return engine().accept_line()
end

--- Hide the suggestion.
--- @return boolean dismissed
function M.dismiss()
  return engine().dismiss()
end

--- Show the next suggestion, or ask for one now.
function M.next()
  engine().next()
end

--- The suggestion shown at the cursor, or nil.
--- @return string?
function M.suggestion()
  return engine().suggestion()
end

--- Whether a suggestion is shown (cheap: for `<expr>` mappings and statuslines).
--- @return boolean
function M.visible()
  return engine().suggestion() ~= nil
end

--- Whether suggestions are on (`:Ouzel toggle`).
--- @return boolean
function M.enabled()
  return engine().enabled ~= false
end

--- Turn suggestions on or off; no argument flips them.
--- @param on? boolean
--- @return boolean enabled
function M.toggle(on)
  if on == nil then
    on = not M.enabled()
  end
  engine().set_enabled(on)
  vim.cmd.redrawstatus({ bang = true })
  return on
end

--- A statusline component: "ouzel", "ouzel: off", "ouzel: Loading model 40%", or "".
--- @return string
function M.statusline()
  return require('ouzel.status').statusline()
end

return M
