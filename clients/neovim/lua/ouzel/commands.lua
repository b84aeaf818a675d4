--- `:Ouzel {status|index|toggle|chat|agent|cancel}`.

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

--- `:Ouzel chat [question]`, `:'<,'>Ouzel chat [question]`, `:Ouzel chat history`,
--- `:Ouzel chat new`.
--- @param args {args: string, range: integer, line1: integer, line2: integer}
local function chat(args)
  local chat_module = require('ouzel.chat')
  local question = vim.trim((args.args or ''):gsub('^%s*chat', '', 1))
  if question == 'history' then
    chat_module.history()
    return
  end
  if question == 'new' then
    chat_module.new()
    return
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local lines = args.range and args.range > 0 and { args.line1, args.line2 } or nil
  if question ~= '' then
    chat_module.ask(question, bufnr, lines)
    return
  end
  vim.ui.input({ prompt = 'Ask ouzel: ' }, function(answer)
    if type(answer) == 'string' and vim.trim(answer) ~= '' then
      chat_module.ask(answer, bufnr, lines)
    end
  end)
end

--- `:Ouzel agent [task]`, `:'<,'>Ouzel agent [task]`, `:Ouzel agent undo`.
--- @param args {args: string, range: integer, line1: integer, line2: integer}
local function agent(args)
  local agent_module = require('ouzel.agent')
  local task = vim.trim((args.args or ''):gsub('^%s*agent', '', 1))
  if task == 'undo' then
    if (args.range or 0) > 0 then
      vim.notify('ouzel: :Ouzel agent undo takes no range', vim.log.levels.ERROR)
      return
    end
    agent_module.undo()
    return
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local lines = args.range and args.range > 0 and { args.line1, args.line2 } or nil
  if task ~= '' then
    agent_module.run(task, bufnr, lines)
    return
  end
  vim.ui.input({ prompt = 'Ask the ouzel agent: ' }, function(answer)
    if type(answer) == 'string' and vim.trim(answer) ~= '' then
      agent_module.run(answer, bufnr, lines)
    end
  end)
end

local function cancel()
  local jobs = package.loaded['ouzel.jobs']
  local count = jobs and jobs.cancel() or 0
  vim.notify(
    count > 0 and ('ouzel: stopping %d request(s)'):format(count) or 'ouzel: nothing is running',
    vim.log.levels.INFO
  )
end

M.subcommands = {
  status = function()
    require('ouzel.status').show()
  end,
  index = index,
  toggle = toggle,
  chat = chat,
  agent = agent,
  cancel = cancel,
}

--- @param args {fargs: string[], args: string, range: integer, line1: integer, line2: integer}
function M.run(args)
  local name = args.fargs[1] or 'status'
  local run = M.subcommands[name]
  if not run then
    local known = 'status, index or toggle, chat, agent or cancel'
    vim.notify(
      ('ouzel: unknown subcommand %q; try :Ouzel %s'):format(name, known),
      vim.log.levels.ERROR
    )
    return
  end
  if name ~= 'chat' and name ~= 'agent' and (#args.fargs > 1 or (args.range or 0) > 0) then
    vim.notify(('ouzel: :Ouzel %s takes no argument or range'):format(name), vim.log.levels.ERROR)
    return
  end
  run(args)
end

--- @param lead string
--- @param line? string the command line so far
--- @return string[]
function M.complete(lead, line)
  if line and line:match('^%S*Ouzel%s+chat%s+%S*$') then
    return vim.tbl_filter(function(name)
      return vim.startswith(name, lead)
    end, { 'history', 'new' })
  end
  if line and line:match('^%S*Ouzel%s+agent%s+%S*$') then
    return vim.tbl_filter(function(name)
      return vim.startswith(name, lead)
    end, { 'undo' })
  end
  local names = vim.tbl_keys(M.subcommands)
  table.sort(names)
  return vim.tbl_filter(function(name)
    return vim.startswith(name, lead)
  end, names)
end

return M
