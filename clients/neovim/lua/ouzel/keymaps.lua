--- Default insert-mode keys, set the first time an ouzel client attaches (so the user's own
--- config and plugins have run) and only for keys and actions the user has not mapped.

local M = {}

--- key, <Plug> name, API function, and whether the key keeps its own meaning when no
--- suggestion is shown.
M.defaults = {
  { key = '<Tab>', plug = 'ouzel-accept', fn = 'accept', fallback = true },
  { key = '<M-Right>', plug = 'ouzel-accept-word', fn = 'accept_word', fallback = true },
  { key = '<M-C-Right>', plug = 'ouzel-accept-line', fn = 'accept_line', fallback = true },
  { key = '<C-]>', plug = 'ouzel-dismiss', fn = 'dismiss', fallback = true },
  { key = '<M-]>', plug = 'ouzel-next', fn = 'next', fallback = false },
}

local done = false

--- Whether a mapping is one of Neovim's own defaults (e.g. `<Tab>` jumping in snippets).
--- @param mapping table maparg() dict
--- @return boolean
local function is_neovim_default(mapping)
  if mapping.callback then
    local source = debug.getinfo(mapping.callback, 'S').source
    return source:find('vim/_defaults.lua', 1, true) ~= nil
  end
  return false
end

--- What the key did before ouzel mapped it, as keys for an `<expr>` mapping to return.
--- @param key string
--- @param previous table maparg() dict, possibly empty
--- @return fun(): string
local function fallback_for(key, previous)
  if previous.callback and previous.expr == 1 then
    return previous.callback
  end
  if previous.callback then
    return function()
      vim.schedule(previous.callback)
      return ''
    end
  end
  return function()
    return key
  end
end

--- Map `key` unless the user already maps it in insert mode, or already maps the action.
--- Neovim's own default for the key is kept as the fallback.
--- @param default {key: string, plug: string, fn: string, fallback: boolean}
--- @return boolean mapped
local function map_default(default)
  local plug = ('<Plug>(%s)'):format(default.plug)
  local previous = vim.fn.maparg(default.key, 'i', false, true)
  local taken = next(previous) ~= nil and not is_neovim_default(previous)
  if taken or vim.fn.hasmapto(plug, 'i') == 1 then
    return false
  end
  local action = ('<Cmd>lua require("ouzel").%s()<CR>'):format(default.fn)
  local opts = { expr = default.fallback, silent = true, desc = 'ouzel: ' .. default.plug }
  if default.fallback then
    -- Without a suggestion the key does what it did before (Tab inserts a tab, …).
    local fallback = fallback_for(default.key, previous)
    vim.keymap.set('i', default.key, function()
      local loaded = package.loaded['ouzel']
      if loaded and loaded.visible() then
        return action
      end
      return fallback()
    end, opts)
  else
    vim.keymap.set('i', default.key, action, opts)
  end
  return true
end

function M.set_defaults()
  if done then
    return
  end
  done = true
  if not require('ouzel.config').get().keymaps then
    return
  end
  for _, default in ipairs(M.defaults) do
    map_default(default)
  end
end

return M
