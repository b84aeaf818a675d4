--- The server's AI code actions, run from `vim.lsp.buf.code_action()`: the client command
--- `ouzel.codeAction.run` (lsp/ouzel.lua) asks for the instruction of "Edit selection"
--- with `vim.ui.input`, gives the request a work-done token of its own (progress in the
--- statusline and `:Ouzel status`, `:Ouzel cancel` stops it), streams the answers of
--- "explain" and "write tests" into the chat buffer, and says how it ended. The edit itself
--- comes back as `workspace/applyEdit` (see `ouzel.confirm`). Protocol: docs/CHAT.md.

local jobs = require('ouzel.jobs')

local M = {}

--- Actions whose answer is a chat turn rather than an edit.
local ANSWERS = { explain = true, tests = true }

--- The longest instruction the server takes.
M.MAX_INSTRUCTION = 2000

--- A notification for the command's result.
--- @param title string
--- @param result any
--- @return string message
--- @return integer level
function M.describe(title, result)
  if type(result) ~= 'table' then
    return ('%s: the server sent no result'):format(title), vim.log.levels.WARN
  end
  local message = type(result.message) == 'string' and result.message
    or ('%s: %s'):format(title, tostring(result.status))
  local warn = { refused = true, stale = true, failed = true }
  return message, warn[result.status] and vim.log.levels.WARN or vim.log.levels.INFO
end

--- Run the action with its final argument.
--- @param client vim.lsp.Client
--- @param command lsp.Command
--- @param argument table
--- @param bufnr? integer
function M.execute(client, command, argument, bufnr)
  local title = type(command.title) == 'string' and command.title or 'Ouzel'
  local token = jobs.new_token('action')
  argument.workDoneToken = token
  local chat = ANSWERS[argument.action] and require('ouzel.chat') or nil
  local turn = chat and chat.begin_action_turn(client, title, token) or nil
  local sent = jobs.start(client, 'workspace/executeCommand', {
    command = command.command,
    arguments = { argument },
  }, token, {
    title = title,
    bufnr = bufnr,
    on_progress = turn and function(value)
      chat.on_progress(turn, value)
    end or nil,
    on_done = function(err, result)
      if err then
        vim.notify(
          ('ouzel: %s failed: %s'):format(title, tostring(err.message)),
          vim.log.levels.ERROR
        )
        if turn then
          chat.finish(turn, nil, err.message)
        end
        return
      end
      if turn then
        chat.finish(turn, type(result) == 'table' and result or nil)
      end
      local message, level = M.describe(title, result)
      vim.notify('ouzel: ' .. message, level)
    end,
  })
  if not sent then
    vim.notify('ouzel: the server is not running', vim.log.levels.ERROR)
  elseif not turn then
    local running = title:gsub('…$', '') .. '…'
    vim.notify(('ouzel: %s (progress in the statusline; :Ouzel cancel stops it)'):format(running))
  end
end

--- The client command `ouzel.codeAction.run` (see lsp/ouzel.lua).
--- @param command lsp.Command
--- @param ctx {client_id: integer, bufnr: integer}
function M.run(command, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local argument = type(command.arguments) == 'table' and command.arguments[1]
  if not client or type(argument) ~= 'table' then
    vim.notify('ouzel: this code action has no argument to run with', vim.log.levels.ERROR)
    return
  end
  argument = vim.deepcopy(argument)
  local instruction = argument.instruction
  if argument.action ~= 'edit' or (type(instruction) == 'string' and instruction ~= '') then
    M.execute(client, command, argument, ctx.bufnr)
    return
  end
  vim.ui.input({ prompt = 'Ouzel: how should the selection change? ' }, function(answer)
    if type(answer) ~= 'string' or vim.trim(answer) == '' then
      vim.notify('ouzel: no instruction given; nothing done', vim.log.levels.INFO)
      return
    end
    if #answer > M.MAX_INSTRUCTION then
      vim.notify(
        ('ouzel: the instruction is longer than %d characters'):format(M.MAX_INSTRUCTION),
        vim.log.levels.ERROR
      )
      return
    end
    argument.instruction = answer
    M.execute(client, command, argument, ctx.bufnr)
  end)
end

return M
