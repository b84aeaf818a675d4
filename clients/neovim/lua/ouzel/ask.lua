--- `window/showMessageRequest` from ouzel: the agent's questions that are not edits (a
--- protected file: "Allow this change" / "Refuse"; run_command: "Run" / "Refuse", and for a
--- destructive command "Run anyway" / "Refuse"). Asked with `vim.ui.select`, one question at
--- a time with the hunk floats (`ouzel.confirm`), the message marked as a warning or error
--- as the server typed it. No choice (Esc, closing the picker) answers null: the server
--- takes that as a refusal.

local M = {}

local KINDS = { [1] = 'error', [2] = 'warning', [3] = 'info', [4] = 'log' }

--- The prompt for a request: `ouzel warning: <message>` (one line: pickers show one).
--- @param params table lsp.ShowMessageRequestParams
--- @return string
function M.prompt(params)
  local kind = KINDS[params.type] or 'question'
  local message = tostring(params.message or ''):gsub('\r?\n', ' ')
  return ('ouzel %s: %s'):format(kind, message)
end

--- The actions of a request that can be shown, in order.
--- @param params table
--- @return table[]
function M.actions(params)
  local actions = {}
  for _, action in ipairs(type(params.actions) == 'table' and params.actions or {}) do
    if type(action) == 'table' and type(action.title) == 'string' then
      table.insert(actions, action)
    end
  end
  return actions
end

--- The handler of the ouzel client (lsp/ouzel.lua).
--- @param _ any
--- @param params any
--- @return table|userdata the chosen action, or vim.NIL
function M.handler(_, params)
  if type(params) ~= 'table' or type(params.message) ~= 'string' then
    return vim.NIL
  end
  local actions = M.actions(params)
  if #actions == 0 then
    local level = params.type == 1 and vim.log.levels.ERROR or vim.log.levels.WARN
    vim.notify('ouzel: ' .. params.message, level)
    return vim.NIL
  end
  local choice = require('ouzel.confirm').await(function(done)
    vim.ui.select(actions, {
      prompt = M.prompt(params),
      kind = 'ouzel_request',
      format_item = function(action)
        return (action.title:gsub('\r?\n', ' '))
      end,
    }, function(item)
      done(item)
    end)
  end)
  return type(choice) == 'table' and choice or vim.NIL
end

return M
