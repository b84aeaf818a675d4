--- `:Ouzel {status|index|toggle}`.

local M = {}

--- Index commands the server may offer through `workspace/executeCommand`, preferred first.
local INDEX_COMMANDS = { 'ouzel.index', 'ouzel.reindex' }

local function index()
  local client = require('ouzel').any_client()
  if not client then
    vim.notify('ouzel: no server is running', vim.log.levels.WARN)
    return
  end
  local provider = client.server_capabilities.executeCommandProvider
  local offered = type(provider) == 'table' and provider.commands or {}
  for _, name in ipairs(INDEX_COMMANDS) do
    if vim.list_contains(offered, name) then
      client:request('workspace/executeCommand', { command = name }, function(err)
        if err then
          vim.notify('ouzel: indexing failed: ' .. tostring(err.message), vim.log.levels.ERROR)
        end
      end)
      vim.notify('ouzel: indexing the workspace (progress in the statusline)', vim.log.levels.INFO)
      return
    end
  end
  vim.notify('ouzel: this server does not offer indexing (ouzel.index)', vim.log.levels.WARN)
end

local function toggle()
  local on = require('ouzel').toggle()
  vim.notify('ouzel: suggestions ' .. (on and 'on' or 'off'), vim.log.levels.INFO)
end

M.subcommands = {
  status = function()
    require('ouzel.status').show()
  end,
  index = index,
  toggle = toggle,
}

--- @param args {fargs: string[]}
function M.run(args)
  local name = args.fargs[1] or 'status'
  local run = M.subcommands[name]
  if not run then
    vim.notify(
      ('ouzel: unknown subcommand %q; try :Ouzel status, index or toggle'):format(name),
      vim.log.levels.ERROR
    )
    return
  end
  run()
end

--- @param lead string
--- @return string[]
function M.complete(lead)
  local names = vim.tbl_keys(M.subcommands)
  table.sort(names)
  return vim.tbl_filter(function(name)
    return vim.startswith(name, lead)
  end, names)
end

return M
